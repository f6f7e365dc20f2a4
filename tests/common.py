"""Small models and inputs shared by the model tests (CPU-sized)."""
import torch

import ddod  # noqa: F401  (compat + registrations)
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances

from ddod.modeling import (
    DDOD,
    CostATSSAssigner,
    DDODHead,
    LastLevelP6P7FromP5,
    LevelReweighting,
    make_resnet_stages,
)

LEVELS = ["p3", "p4", "p5", "p6", "p7"]


def tiny_ddod(num_classes=4, anchor_scale=4, **overrides):
    """A DDOD with every part of the real one at toy width (R18/8 channels, FPN 32, 2 convs)."""
    backbone = FPN(
        bottom_up=ResNet(
            BasicStem(3, 8, norm="BN"),
            make_resnet_stages(18, base_channels=8, norm="BN"),
            out_features=["res3", "res4", "res5"],
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=32,
        top_block=LastLevelP6P7FromP5(32, 32),
    )
    strides = [8, 16, 32, 64, 128]
    head_kwargs = dict(
        input_shape=[ShapeSpec(channels=32)] * 5, num_classes=num_classes, conv_dims=32, num_convs=2
    )
    head_kwargs.update(overrides.pop("head", {}))
    kwargs = dict(
        backbone=backbone,
        head=DDODHead(**head_kwargs),
        head_in_features=LEVELS,
        anchor_generator=DefaultAnchorGenerator(
            sizes=[[anchor_scale * s] for s in strides],
            aspect_ratios=[1.0],
            strides=strides,
            offset=0.0,
        ),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=num_classes,
        cls_assigner=CostATSSAssigner(alpha=0.8),
        reg_assigner=CostATSSAssigner(alpha=0.5),
        level_reweighting=LevelReweighting(5, sync=True),
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
    )
    kwargs.update(overrides)
    return DDOD(**kwargs)


def make_input(height, width, boxes, classes, seed=0):
    """A training input dict with a random image and the given XYXY boxes / classes."""
    g = torch.Generator().manual_seed(seed)
    inst = Instances((height, width))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64).reshape(-1)
    return {"image": torch.rand(3, height, width, generator=g) * 255, "instances": inst}
