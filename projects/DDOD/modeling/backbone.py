"""Backbone pieces for P3-P7 dense detectors: the P6/P7 block and small ResNets for CPU runs."""
from typing import List

import torch.nn.functional as F
from torch import nn

import fvcore.nn.weight_init as weight_init
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.resnet import BasicBlock, BottleneckBlock, ResNet, build_resnet_backbone

__all__ = ["LastLevelP6P7FromP5", "make_resnet_stages", "build_ddod_resnet_fpn_backbone"]


class LastLevelP6P7FromP5(nn.Module):
    """P6 and P7 from the FPN's P5 output (mmdet's ``add_extra_convs='on_output'``).

    Detectron2's ``LastLevelP6P7`` always applies a ReLU before the P7 conv; the reference DDOD
    (mmdet FPN with ``relu_before_extra_convs=False``) does not. ``relu_before_p7`` picks.
    """

    def __init__(self, in_channels: int, out_channels: int, *, relu_before_p7: bool = False):
        super().__init__()
        self.num_levels = 2
        self.in_feature = "p5"
        self.relu_before_p7 = relu_before_p7
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            weight_init.c2_xavier_fill(module)

    def forward(self, p5):
        p6 = self.p6(p5)
        p7 = self.p7(F.relu(p6) if self.relu_before_p7 else p6)
        return [p6, p7]


def make_resnet_stages(
    depth: int, *, base_channels: int = 64, norm: str = "FrozenBN", **kwargs
) -> List[List[nn.Module]]:
    """ResNet stages res2..res5 for ``depth`` in {18, 34, 50, 101}, with every width scaled by
    ``base_channels / 64`` (64 gives the standard networks). Small widths make CPU-sized models
    for the quickstart and tests; ``kwargs`` go to each block (e.g. ``stride_in_1x1``)."""
    blocks_per_stage = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
    if depth not in blocks_per_stage:
        raise ValueError(f"depth must be one of {sorted(blocks_per_stage)}, got {depth}.")
    bottleneck = depth >= 50
    expansion = 4 if bottleneck else 1
    stages = []
    in_channels = base_channels
    for i, num_blocks in enumerate(blocks_per_stage[depth]):
        out_channels = base_channels * expansion * 2**i
        stage_kwargs = dict(kwargs)
        if bottleneck:
            stage_kwargs["bottleneck_channels"] = out_channels // 4
        else:
            stage_kwargs.pop("stride_in_1x1", None)  # BasicBlock has no such argument
        stages.append(
            ResNet.make_stage(
                block_class=BottleneckBlock if bottleneck else BasicBlock,
                num_blocks=num_blocks,
                stride_per_block=[1 if i == 0 else 2] + [1] * (num_blocks - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                norm=norm,
                **stage_kwargs,
            )
        )
        in_channels = out_channels
    return stages


@BACKBONE_REGISTRY.register()
def build_ddod_resnet_fpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs builder: ResNet + FPN on res3-res5 with P6/P7 from P5 (P3-P7, as ATSS/DDOD)."""
    bottom_up = build_resnet_backbone(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7FromP5(
            out_channels,
            out_channels,
            # FCOS/VFNet necks apply a ReLU before P7; DDOD/ATSS do not (the default)
            relu_before_p7=cfg.MODEL.DDOD.get("RELU_BEFORE_P7", False),
        ),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
