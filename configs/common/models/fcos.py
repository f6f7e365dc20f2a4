# FCOS* on ResNet-50-FPN: FCOS with the improvements the ATSS paper's implementation uses, which is
# the paper's FCOS baseline (39.2 AP, Table 3, footnote *), built from the same parts as DDOD:
#   * one point per location, at the cell centre (x + 0.5) * stride, represented as a
#     stride x stride box for the coder;
#   * FCOS assignment with centre sampling (radius 1.5 strides), per-level ranges of
#     max(l, t, r, b) and the smallest box winning (FCOSPointAssigner), shared by both branches;
#   * l, t, r, b regression normalised by the stride (Box2BoxTransformLTRB), GIoU loss weighted by
#     the centerness target; centerness predicted on the regression tower (BCE);
#   * scores = class probability x centerness (thresholded on the class probability); NMS 0.6;
#   * GN head with a per-level scale; P6 from P5 with a ReLU before P7 (mmdet's FCOS neck).
from detectron2.config import LazyCall as L

from ddod.modeling import Box2BoxTransformLTRB, FCOSPointAssigner

from .ddod import model

model.backbone.top_block.relu_before_p7 = True
model.anchor_generator.sizes = [[8], [16], [32], [64], [128]]  # = strides: points, not anchors
model.anchor_generator.offset = 0.5
model.head.cls_deform_index = None
model.head.reg_deform_index = None
model.box2box_transform = L(Box2BoxTransformLTRB)(normalize_by_size=True)
model.cls_assigner = L(FCOSPointAssigner)(
    strides=[8, 16, 32, 64, 128],
    size_ranges=[[-1, 64], [64, 128], [128, 256], [256, 512], [512, 100000000]],
    center_sampling_radius=1.5,
)
model.reg_assigner = None
model.level_reweighting.strategy = "none"
model.quality_target = "centerness"
model.centerness_weighted_box_loss = True
model.loss_bbox_weight = 1.0
