"""Backbone pieces for P3-P7 dense detectors: the P6/P7 block, and ResNet/ResNeXt stages of any
width (small ones for CPU runs), with deformable stages that need no compiled detectron2 ops."""
from typing import List, Sequence

import torch.nn.functional as F
from torch import nn

import fvcore.nn.weight_init as weight_init
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.resnet import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    ResNet,
    build_resnet_backbone,
)

from .deform_resnet import DeformBottleneckBlock

__all__ = [
    "LastLevelP6P7FromP5",
    "make_resnet_stages",
    "build_ddod_resnet_backbone",
    "build_ddod_resnet_fpn_backbone",
]


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


_BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


def make_resnet_stages(
    depth: int,
    *,
    base_channels: int = 64,
    norm: str = "FrozenBN",
    num_groups: int = 1,
    width_per_group: int = 64,
    deform_on_per_stage: Sequence[bool] = (False, False, False, False),
    deform_modulated: bool = False,
    deform_num_groups: int = 1,
    **kwargs,
) -> List[List[nn.Module]]:
    """ResNet/ResNeXt stages res2..res5 for ``depth`` in {18, 34, 50, 101, 152}, with every width
    scaled by ``base_channels / 64`` (64 gives the standard networks). Small widths make CPU-sized
    models for the quickstart and tests; ``kwargs`` go to each block (e.g. ``stride_in_1x1``).

    The other arguments are detectron2's ``MODEL.RESNETS`` ones (bottleneck depths only):

    * ``num_groups``, ``width_per_group``: ResNeXt; res2's 3x3 conv has ``num_groups *
      width_per_group`` channels (x base_channels / 64), doubled at each stage. (1, 64) is
      ResNet, (32, 4) X-101-32x4d, (64, 4) X-101-64x4d, (32, 8) X-101-32x8d.
    * ``deform_on_per_stage`` (4 bools, res2..res5): which stages use
      :class:`~ddod.modeling.deform_resnet.DeformBottleneckBlock` (torchvision's deformable conv,
      detectron2's parameter names); ``deform_modulated`` picks DCNv2 (offsets and a mask) over
      DCNv1; ``deform_num_groups`` is the number of offset groups. "DCN" backbones in the papers
      are (False, True, True, True) with DCNv2 (mmdet's ``mdconv_c3-c5``).
    """
    if depth not in _BLOCKS_PER_STAGE:
        raise ValueError(f"depth must be one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}.")
    if len(deform_on_per_stage) != 4:
        raise ValueError(f"deform_on_per_stage needs 4 entries (res2..res5): {deform_on_per_stage}")
    bottleneck = depth >= 50
    if not bottleneck and (num_groups != 1 or any(deform_on_per_stage)):
        raise ValueError("ResNeXt groups and deformable stages need a bottleneck depth (>= 50).")
    expansion = 4 if bottleneck else 1
    # the 3x3 width of res2 (64 for ResNet, num_groups * width_per_group for ResNeXt)
    bottleneck_channels = num_groups * width_per_group * base_channels // 64
    stages = []
    in_channels = base_channels
    for i, num_blocks in enumerate(_BLOCKS_PER_STAGE[depth]):
        out_channels = base_channels * expansion * 2**i
        stage_kwargs = dict(kwargs)
        block_class = BasicBlock
        if bottleneck:
            stage_kwargs["bottleneck_channels"] = bottleneck_channels * 2**i
            stage_kwargs["num_groups"] = num_groups
            block_class = BottleneckBlock
            if deform_on_per_stage[i]:
                block_class = DeformBottleneckBlock
                stage_kwargs["deform_modulated"] = deform_modulated
                stage_kwargs["deform_num_groups"] = deform_num_groups
        else:
            stage_kwargs.pop("stride_in_1x1", None)  # BasicBlock has no such argument
        stages.append(
            ResNet.make_stage(
                block_class=block_class,
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
def build_ddod_resnet_backbone(cfg, input_shape: ShapeSpec):
    """yacs builder: detectron2's ``build_resnet_backbone`` (same ``MODEL.RESNETS`` keys and
    result), with the deformable stages (``DEFORM_ON_PER_STAGE``, ``DEFORM_MODULATED``,
    ``DEFORM_NUM_GROUPS``) built from :class:`DeformBottleneckBlock`, which needs no compiled
    detectron2 ops. Without deformable stages it is detectron2's builder."""
    r = cfg.MODEL.RESNETS
    if not any(r.DEFORM_ON_PER_STAGE):
        return build_resnet_backbone(cfg, input_shape)
    if r.DEPTH < 50 or r.RES5_DILATION != 1 or r.STEM_OUT_CHANNELS * 4 != r.RES2_OUT_CHANNELS:
        raise ValueError(
            "Deformable stages here need a bottleneck ResNet (DEPTH >= 50) with RES5_DILATION 1 "
            "and RES2_OUT_CHANNELS = 4 x STEM_OUT_CHANNELS."
        )
    stem = BasicStem(
        in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=r.NORM
    )
    stages = make_resnet_stages(
        r.DEPTH,
        base_channels=r.STEM_OUT_CHANNELS,
        norm=r.NORM,
        num_groups=r.NUM_GROUPS,
        width_per_group=r.WIDTH_PER_GROUP * 64 // r.STEM_OUT_CHANNELS,
        deform_on_per_stage=r.DEFORM_ON_PER_STAGE,
        deform_modulated=r.DEFORM_MODULATED,
        deform_num_groups=r.DEFORM_NUM_GROUPS,
        stride_in_1x1=r.STRIDE_IN_1X1,
    )
    return ResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_ddod_resnet_fpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs builder: ResNet + FPN on res3-res5 with P6/P7 from P5 (P3-P7, as ATSS/DDOD); the
    ResNet from :func:`build_ddod_resnet_backbone` (deformable stages without compiled ops)."""
    bottom_up = build_ddod_resnet_backbone(cfg, input_shape)
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
