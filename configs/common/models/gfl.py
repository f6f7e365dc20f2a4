# Generalized Focal Loss (Li et al., NeurIPS 2020) on ResNet-50-FPN, P3-P7, as the official R50 1x
# recipe (mmdetection gfl_r50_fpn_1x_coco), composed from the framework's parts:
#   * head: GFLHead (heads/gfl_head.py): 4 conv-GN-ReLU per tower; a joint class-IoU score (no
#     separate quality branch); per side a distribution over 0..16 strides whose integral is the
#     distance (l, t, r, b), times a learnable per-level scale on the logits;
#   * assignment: plain ATSS (top-9 per level, one 8 x stride anchor per location at offset 0),
#     shared by both branches;
#   * losses: quality focal loss (beta 2; target = IoU of the predicted box at the GT's class),
#     GIoU x 2 and distribution focal loss x 0.25, both weighted by the positive's detached best
#     class score and normalised by the sum of those;
#   * inference: score = sigmoid(cls), top-1000 per level, NMS 0.6, 100 detections;
#   * neck: P6 from P5's output, no ReLU before P7 (mmdet add_extra_convs="on_output").
# DDOD's disentanglements apply as on ATSS (head.cls/reg_deform_index, reg_assigner,
# level_reweighting); TSCODE with ./tscode.py.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from ddod.modeling import (
    ATSSAssigner,
    Box2BoxTransformLTRB,
    DistributionFocalLoss,
    GFLHead,
    QualityFocalLoss,
)

from .ddod import model

model.head = L(GFLHead)(
    input_shape=[ShapeSpec(channels=256)] * 5,
    num_classes="${..num_classes}",
    reg_max=16,
    conv_dims=256,
    num_convs=4,
    norm="GN",
    cls_deform_index=None,
    reg_deform_index=None,
    prior_prob=0.01,
)
# distances in strides from the anchor centres; the anchors are 8 x stride
model.box2box_transform = L(Box2BoxTransformLTRB)(normalize_by_size=True, size_divisor=8.0)
model.cls_assigner = L(ATSSAssigner)(topk=9)
model.reg_assigner = None
model.level_reweighting = None
model.cls_loss = L(QualityFocalLoss)(beta=2.0)
model.box_distribution_loss = L(DistributionFocalLoss)(reg_max=16)
model.loss_box_distribution_weight = 0.25
model.score_weighted_box_loss = True
model.loss_bbox_weight = 2.0
model.quality_target = None
model.test_score_mode = "cls"
