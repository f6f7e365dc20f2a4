"""yacs support, for pipelines built on ``get_cfg()``/``build_model(cfg)``.

Usage::

    from detectron2.config import get_cfg
    from ddod import add_ddod_config

    cfg = get_cfg()
    add_ddod_config(cfg)          # MODEL.DDOD.* plus DDOD defaults for anchors and the backbone
    cfg.merge_from_file("my_ddod.yaml")
    model = build_model(cfg)      # MODEL.META_ARCHITECTURE = "DDOD"
"""
from detectron2.config import CfgNode as CN


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
    d.HEAD_NAME = "DDODHead"
    d.HEAD_CONV_DIMS = 256
    d.HEAD_NUM_CONVS = 4
    d.HEAD_NORM = "GN"
    # 0-based position of the deformable conv in each tower; -1 for none.
    d.CLS_DEFORM_INDEX = 0
    d.REG_DEFORM_INDEX = 0
    d.PRIOR_PROB = 0.01
    d.QUALITY_BRANCH = True
    d.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
    # Assignment: alpha of the cost-based ATSS per branch (-1: plain IoU-of-anchor ATSS).
    d.ATSS_TOPK = 9
    d.CLS_ALPHA = 0.8
    d.REG_ALPHA = 0.5
    d.SEPARATE_ASSIGNMENT = True
    # FPN level loss re-weighting.
    d.LEVEL_REWEIGHTING = True
    d.REWEIGHT_CUMULATIVE = True
    d.REWEIGHT_SHARED_COUNTERS = False
    d.REWEIGHT_SYNC = True
    # Losses.
    d.FOCAL_LOSS_ALPHA = 0.25
    d.FOCAL_LOSS_GAMMA = 2.0
    d.LOSS_CLS_WEIGHT = 1.0
    d.LOSS_BBOX_WEIGHT = 2.0
    d.LOSS_QUALITY_WEIGHT = 1.0
    # Inference.
    d.SCORE_THRESH_TEST = 0.05
    d.TOPK_CANDIDATES_TEST = 1000
    d.NMS_THRESH_TEST = 0.6
    return cfg
