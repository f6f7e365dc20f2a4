# VarifocalNet (Zhang et al., CVPR 2021) on ResNet-50-FPN, P3-P7, as the official code's R50 1x
# (shared/spec/related_methods.md §1), composed from the framework's parts:
#   * head: VFNetHead (heads/vfnet_head.py): 3 conv-GN-ReLU per tower; the initial box
#     (extra conv, exp, x reg_denom 64..1024); star-shaped deformable sampling with offsets from
#     the initial box (layers/star_offsets.py, gradient x 0.1); refined box = factors x detached
#     initial box; IACS logits from the star DCN on the classification tower;
#   * assignment: one plain ATSS (top-9 per level, one 8 x stride anchor per location at offset 0)
#     shared by both branches;
#   * losses: varifocal loss (alpha 0.75, gamma 2, q-weighted; target = IoU of the refined box,
#     losses/varifocal_loss.py); GIoU on the initial box (x 1.5) and on the refined box (x 2.0),
#     each weighted by its own IoU and normalised by the all-reduced sum of those;
#   * inference: score = sigmoid(cls) (the IACS), refined boxes, top-1000 per level, NMS 0.6, 100;
#   * neck: P6 from P5's output, ReLU before P7 (mmdet's FPN for FCOS/VFNet).
# configs/combos/ puts DDOD's parts (cost-based assignment, level re-weighting) on it.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from ddod.modeling import ATSSAssigner, Box2BoxTransformLTRB, VarifocalLoss, VFNetHead

from .ddod import model

model.backbone.top_block.relu_before_p7 = True
model.head = L(VFNetHead)(
    input_shape=[ShapeSpec(channels=256)] * 5,
    num_classes="${..num_classes}",
    strides=[8, 16, 32, 64, 128],
    # upper ends of FCOS's regress ranges, the last = 2 x the previous
    reg_denoms=[64, 128, 256, 512, 1024],
    conv_dims=256,
    num_convs=3,
    norm="GN",
    star_dcn=True,
    refine=True,
    gradient_mul=0.1,
    prior_prob=0.01,
)
# the head predicts l, t, r, b in pixels from the anchor centres (the grid points)
model.box2box_transform = L(Box2BoxTransformLTRB)(normalize_by_size=False)
model.cls_assigner = L(ATSSAssigner)(topk=9)
model.reg_assigner = None
model.level_reweighting = None
model.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
model.iou_weighted_box_loss = True
model.loss_bbox_weight = 2.0  # refined box
model.loss_init_bbox_weight = 1.5  # initial box
model.quality_target = None
model.test_score_mode = "cls"
