# DDOD on ResNet-50-FPN, P3-P7 (shared/spec/ddod.md §0-§7). Other configs import `model` from
# here and override parts; e.g. the ATSS baseline switches the three disentanglements off.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.box_regression import Box2BoxTransform

from ddod.modeling import (
    DDOD,
    CostATSSAssigner,
    DDODHead,
    LastLevelP6P7FromP5,
    LevelReweighting,
    make_resnet_stages,
)

model = L(DDOD)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
            # MSRA R-50 (detectron2's ImageNet weights): stride in the 1x1 conv, BGR, std 1.
            stages=L(make_resnet_stages)(
                depth=50, base_channels=64, stride_in_1x1=True, norm="FrozenBN"
            ),
            out_features=["res3", "res4", "res5"],
            # stem + res2 frozen, as the reference's frozen_stages=1
            freeze_at=2,
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        # P6 from P5's output with no ReLU before P7 (mmdet add_extra_convs="on_output")
        top_block=L(LastLevelP6P7FromP5)(in_channels=256, out_channels=256),
    ),
    head=L(DDODHead)(
        input_shape=[ShapeSpec(channels=256)] * 5,
        num_classes="${..num_classes}",
        num_anchors=1,
        conv_dims=256,
        num_convs=4,
        norm="GN",
        # spatial disentanglement: a deformable first conv in each tower (None switches it off)
        cls_deform_index=0,
        reg_deform_index=0,
        prior_prob=0.01,
        quality_branch=True,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    # one square anchor of 8 x stride per location, centred on the grid points (offset 0)
    anchor_generator=L(DefaultAnchorGenerator)(
        sizes=[[64], [128], [256], [512], [1024]],
        aspect_ratios=[1.0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    ),
    # mmdet DeltaXYWH with stds (0.1, 0.1, 0.2, 0.2)
    box2box_transform=L(Box2BoxTransform)(weights=[10.0, 10.0, 5.0, 5.0]),
    num_classes=80,
    # label-assignment disentanglement: cost = p^(1-alpha) * IoU^alpha, one alpha per branch
    cls_assigner=L(CostATSSAssigner)(alpha=0.8, topk=9),
    reg_assigner=L(CostATSSAssigner)(alpha=0.5, topk=9),
    # pyramid-supervision disentanglement; sync=False is the reference's per-process counting
    level_reweighting=L(LevelReweighting)(
        num_levels=5, cumulative=True, shared_counters=False, sync=True
    ),
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    loss_cls_weight=1.0,
    loss_bbox_weight=2.0,
    loss_quality_weight=1.0,
    test_score_thresh=0.05,
    test_topk_candidates=1000,
    test_nms_thresh=0.6,
    max_detections_per_image=100,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)
