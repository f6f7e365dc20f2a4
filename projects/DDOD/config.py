"""yacs support, for pipelines built on ``get_cfg()``/``build_model(cfg)``.

Usage::

    from detectron2.config import get_cfg
    from ddod import add_ddod_config

    cfg = get_cfg()
    add_ddod_config(cfg)          # MODEL.DDOD.* plus DDOD defaults for anchors and the backbone
    cfg.merge_from_file("my_ddod.yaml")
    model = build_model(cfg)      # MODEL.META_ARCHITECTURE = "DDOD"

The defaults are DDOD on ATSS (configs/ddod_R50_1x.py). The paper's other bases are settings of
the same keys; e.g. RetinaNet (configs/common/models/retinanet.py)::

    ASSIGNER: "max_iou"        CLS_POS_IOU: 0.5   REG_POS_IOU: 0.4   SEPARATE_ASSIGNMENT: True
    BOX_CODER: "delta_xywh"    BBOX_REG_WEIGHTS: (1, 1, 1, 1)   BOX_REG_LOSS_TYPE: "smooth_l1"
    QUALITY_TARGET: "none"     SCORE_MODE_TEST: "cls"   HEAD_NORM: ""   HEAD_PER_LEVEL_SCALE: False
    ANCHOR_GENERATOR.SIZES: [[32, 40.3, 50.8], ...]   ASPECT_RATIOS: [[0.5, 1.0, 2.0]]

and FCOS*: ASSIGNER "fcos", BOX_CODER "ltrb", QUALITY_TARGET "centerness",
CENTERNESS_WEIGHTED_BOX_LOSS True, anchor sizes = strides with OFFSET 0.5.

Varifocal loss on any of them: CLS_LOSS "varifocal" (VFL_ALPHA, VFL_GAMMA, VFL_IOU_WEIGHTED).
VarifocalNet (configs/common/models/vfnet.py): ``add_vfnet_config(cfg)`` sets the keys below
to its composition (HEAD_NAME "VFNetHead" with MODEL.VFNET.*, plain ATSS, VFL, IoU-weighted
GIoU on the initial and the refined box, BOX_CODER "ltrb_pixels", no re-weighting).
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_ddod_config", "add_vfnet_config"]


def add_ddod_config(cfg):
    """Add the ``MODEL.DDOD`` keys and set the anchor/backbone defaults DDOD uses (R50-FPN P3-P7,
    one square anchor of 8 x stride per location, offset 0). Values match configs/ddod_R50_1x.py.
    """
    cfg.MODEL.META_ARCHITECTURE = "DDOD"
    cfg.MODEL.BACKBONE.NAME = "build_ddod_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[64], [128], [256], [512], [1024]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[1.0]]
    cfg.MODEL.ANCHOR_GENERATOR.OFFSET = 0.0

    cfg.MODEL.DDOD = d = CN()
    d.NUM_CLASSES = 80
    d.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    # ReLU between P6 and the P7 conv (FCOS/VFNet necks); DDOD/ATSS have none.
    d.RELU_BEFORE_P7 = False
    d.HEAD_NAME = "DDODHead"
    d.HEAD_CONV_DIMS = 256
    d.HEAD_NUM_CONVS = 4
    d.HEAD_NORM = "GN"
    # 0-based position of the deformable conv in each tower; -1 for none.
    d.CLS_DEFORM_INDEX = 0
    d.REG_DEFORM_INDEX = 0
    d.PRIOR_PROB = 0.01
    d.HEAD_PER_LEVEL_SCALE = True
    d.HEAD_BBOX_BIAS_INIT = 0.0
    # What the quality branch learns: "iou", "centerness" or "none" (no branch).
    d.QUALITY_TARGET = "iou"
    # Box coder: "delta_xywh" (Box2BoxTransform with BBOX_REG_WEIGHTS), "ltrb" (FCOS, in
    # anchor sizes) or "ltrb_pixels" (VFNet: l, t, r, b in pixels).
    d.BOX_CODER = "delta_xywh"
    d.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
    # Assignment: "cost_atss" (DDOD), "atss", "max_iou" (RetinaNet) or "fcos" (FCOS*).
    # SEPARATE_ASSIGNMENT: a second assigner with the REG_* parameters for the regression branch.
    d.ASSIGNER = "cost_atss"
    d.SEPARATE_ASSIGNMENT = True
    d.ATSS_TOPK = 9
    # cost_atss: alpha per branch (-1: plain IoU-of-anchor ATSS).
    d.CLS_ALPHA = 0.8
    d.REG_ALPHA = 0.5
    # max_iou: positives at IoU >= *_POS_IOU; classification ignores [NEG_IOU, CLS_POS_IOU).
    d.CLS_POS_IOU = 0.5
    d.REG_POS_IOU = 0.5
    d.NEG_IOU = 0.4
    # fcos: centre sampling radius (in strides) and the max(l, t, r, b) range of each level.
    d.FCOS_CENTER_SAMPLING_RADIUS = 1.5
    d.FCOS_SIZE_RANGES = [[-1, 64], [64, 128], [128, 256], [256, 512], [512, 1e8]]
    # FPN level loss re-weighting. STRATEGY: "none", "fixed_linear", "linear_reweight",
    # "sum_reweight", "linear_interpolate" (ddod.modeling.losses.level_reweighting);
    # RANGE: (start, end) of "fixed_linear" / "linear_reweight".
    d.LEVEL_REWEIGHTING = True
    d.REWEIGHT_STRATEGY = "linear_interpolate"
    d.REWEIGHT_RANGE = (1.0, 2.0)
    d.REWEIGHT_CUMULATIVE = True
    d.REWEIGHT_SHARED_COUNTERS = False
    d.REWEIGHT_SYNC = True
    # Losses.
    d.FOCAL_LOSS_ALPHA = 0.25
    d.FOCAL_LOSS_GAMMA = 2.0
    d.LOSS_CLS_WEIGHT = 1.0
    d.LOSS_BBOX_WEIGHT = 2.0
    d.LOSS_QUALITY_WEIGHT = 1.0
    # "giou", "diou" or "ciou" on decoded boxes, or "smooth_l1" on the deltas (L1 with beta 0,
    # RetinaNet's).
    d.BOX_REG_LOSS_TYPE = "giou"
    d.SMOOTH_L1_BETA = 0.0
    d.CENTERNESS_WEIGHTED_BOX_LOSS = False
    # VFNet's box weighting: each box's loss times its (detached) IoU, normalised by their sum.
    d.IOU_WEIGHTED_BOX_LOSS = False
    # "own_iou" (VFNet's code: each box by its own IoU, / IoU sum) or "scored_iou" (paper Eq. 3).
    d.IOU_WEIGHTING = "own_iou"
    # Weight of the initial box's loss, for heads that refine their boxes (VFNetHead).
    d.LOSS_INIT_BBOX_WEIGHT = 1.5
    # Classification loss: "focal" (FOCAL_LOSS_*) or "varifocal" (VFL_*; IoU-aware targets).
    d.CLS_LOSS = "focal"
    d.VFL_ALPHA = 0.75
    d.VFL_GAMMA = 2.0
    d.VFL_IOU_WEIGHTED = True
    # Inference. SCORE_MODE: "cls_x_quality" or "cls".
    d.SCORE_MODE_TEST = "cls_x_quality"
    d.SCORE_THRESH_TEST = 0.05
    d.TOPK_CANDIDATES_TEST = 1000
    d.NMS_THRESH_TEST = 0.6

    # VFNetHead (HEAD_NAME "VFNetHead"); its towers use HEAD_CONV_DIMS/HEAD_NUM_CONVS/HEAD_NORM.
    cfg.MODEL.VFNET = v = CN()
    # per-level multiplier of the exp'd distances; [] = the strides
    v.REG_DENOMS = [64, 128, 256, 512, 1024]
    v.STAR_DCN = True
    v.REFINE = True
    v.GRADIENT_MUL = 0.1
    return cfg


def add_vfnet_config(cfg):
    """``add_ddod_config`` with VarifocalNet's composition (configs/common/models/vfnet.py):
    VFNetHead (3 convs per tower, star DCN, refinement), one plain ATSS assignment, varifocal
    loss, GIoU x 1.5 (initial box) and x 2.0 (refined box) weighted by their IoUs, scores =
    sigmoid(cls), no level re-weighting. Anchors/backbone as DDOD's (8 x stride, offset 0).

    On a config that already has the DDOD keys (e.g. sized for a small run) only the keys that
    make the composition change; the others (NUM_CLASSES, HEAD_CONV_DIMS, ...) are kept."""
    if "DDOD" not in cfg.MODEL:
        add_ddod_config(cfg)
    d = cfg.MODEL.DDOD
    d.HEAD_NAME = "VFNetHead"
    d.HEAD_NUM_CONVS = 3
    d.ASSIGNER = "atss"
    d.SEPARATE_ASSIGNMENT = False
    d.LEVEL_REWEIGHTING = False
    d.QUALITY_TARGET = "none"
    d.BOX_CODER = "ltrb_pixels"
    d.CLS_LOSS = "varifocal"
    d.IOU_WEIGHTED_BOX_LOSS = True
    d.LOSS_BBOX_WEIGHT = 2.0
    d.LOSS_INIT_BBOX_WEIGHT = 1.5
    d.SCORE_MODE_TEST = "cls"
    # mmdet's FPN for VFNet: P6 from P5 with a ReLU before P7 (see LastLevelP6P7FromP5)
    d.RELU_BEFORE_P7 = True
    return cfg
