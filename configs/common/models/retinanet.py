# RetinaNet (Lin et al., 2017) on ResNet-50-FPN, as MMDetection trains it (the paper's 36.5 AP
# baseline, Tables 1 and 3), built from the same parts as DDOD (./ddod.py):
#   * 9 anchors per location: 3 scales (2^0, 2^1/3, 2^2/3) x 3 aspect ratios, base 4 x stride;
#   * one IoU assignment shared by both branches: positive at IoU >= 0.5, background below 0.4,
#     ignored in between, plus each GT's best anchor (MaxIoUAssigner);
#   * XYWH deltas with weights 1 and an L1 loss on them; focal loss; no quality branch; scores
#     are the class probabilities; NMS at 0.5;
#   * the head has no norm (convs with bias) and no per-level scale; P6 comes from res5 (the
#     input, not P5), as in detectron2's and MMDetection's RetinaNet.
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.box_regression import Box2BoxTransform

from ddod.modeling import MaxIoUAssigner

from .ddod import model

model.backbone.top_block = L(LastLevelP6P7)(in_channels=2048, out_channels=256, in_feature="res5")
model.anchor_generator.sizes = [
    [x, x * 2 ** (1 / 3), x * 2 ** (2 / 3)] for x in [32, 64, 128, 256, 512]
]
model.anchor_generator.aspect_ratios = [0.5, 1.0, 2.0]
model.head.num_anchors = 9
model.head.norm = ""
model.head.cls_deform_index = None
model.head.reg_deform_index = None
model.head.quality_branch = False
model.head.per_level_scale = False
model.box2box_transform = L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0])
model.cls_assigner = L(MaxIoUAssigner)(pos_iou_thresh=0.5, neg_iou_thresh=0.4)
model.reg_assigner = None
model.level_reweighting.strategy = "none"
model.box_reg_loss_type = "smooth_l1"
model.smooth_l1_beta = 0.0  # plain L1, MMDetection's RetinaNet
model.loss_bbox_weight = 1.0
model.quality_target = None
model.test_score_mode = "cls"
model.test_nms_thresh = 0.5
