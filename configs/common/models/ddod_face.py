# DDOD-Face (paper §5.1 and Table 9): DDOD (ATSS base, ./ddod.py) with the face-detector parts the
# paper adds "to align our baseline with other face detectors": a deformable conv block, the SSH
# context module and DIoU loss; anchors as TinaFace's (DDOD issue #8). The paper gives no more
# detail (its face code was lost); the choices below are ours and follow TinaFace:
#   * one class; P2-P7 (strides 4..128): FPN on res2-res5, P6/P7 from P5 (this project's block);
#   * the "deformable conv block": DCNv1 in every block of res4 and res5 (TinaFace's backbone),
#     on top of DDOD's deformable first conv in each head tower;
#   * SSH context module on every FPN level (ddod.modeling.SSHNeck), GN like the head;
#   * 3 anchors per location, sizes 2^(4/3), 2^(5/3), 2^2 x stride, aspect ratio (h/w) 1.3;
#   * DIoU box loss (weight 2, as GIoU's); ATSS top-9 per level with the cost-based alpha 0.8/0.5;
#   * inference for crowded images: score > 0.01, 5000 per level, NMS 0.45, 1000 detections.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from ddod.modeling import SSHNeck

from .ddod import model

_STRIDES = [4, 8, 16, 32, 64, 128]
_LEVELS = ["p2", "p3", "p4", "p5", "p6", "p7"]

fpn = model.backbone
fpn.bottom_up.out_features = ["res2", "res3", "res4", "res5"]
fpn.bottom_up.stages.deform_on_per_stage = [False, False, True, True]
fpn.bottom_up.stages.deform_modulated = False
fpn.in_features = ["res2", "res3", "res4", "res5"]
model.backbone = L(SSHNeck)(backbone=fpn, norm="GN")

model.num_classes = 1
model.head_in_features = _LEVELS
model.head.input_shape = [ShapeSpec(channels=256)] * len(_LEVELS)
model.head.num_anchors = 3
model.anchor_generator.sizes = [[s * 2 ** (4 / 3), s * 2 ** (5 / 3), s * 4.0] for s in _STRIDES]
model.anchor_generator.aspect_ratios = [1.3]
model.anchor_generator.strides = _STRIDES
model.level_reweighting.num_levels = len(_LEVELS)
model.box_reg_loss_type = "diou"
model.test_score_thresh = 0.01
model.test_topk_candidates = 5000
model.test_nms_thresh = 0.45
model.max_detections_per_image = 1000
