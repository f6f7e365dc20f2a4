"""Deformable ResNet bottlenecks that run without detectron2's compiled ops.

Detectron2's ``DeformBottleneckBlock`` calls ``detectron2._C`` (absent here: its CPU backward
raises and CUDA needs the extension). :class:`DeformBottleneckBlock` below is the same block on
``torchvision.ops.deform_conv2d`` (CPU and CUDA, forward and backward, DCNv1 and the modulated
DCNv2), with the same constructor arguments, submodule names and parameter shapes, so a
detectron2 checkpoint of a deformable ResNet (model zoo ``*_dconv_c3-c5``) loads unchanged::

    res4.0.conv1.weight, res4.0.conv1.norm.{weight,bias,running_mean,running_var}
    res4.0.conv2_offset.{weight,bias}      (27 * G, C, 3, 3) modulated, (18 * G, C, 3, 3) not
    res4.0.conv2.weight                    (C, C / num_groups, 3, 3), no bias
    res4.0.conv2.norm.*, res4.0.conv3.*, res4.0.shortcut.*

Offset layout. Detectron2 splits the modulated conv2_offset output in three equal chunks
(``offset_x, offset_y, mask = chunk(3)``) and passes ``cat(offset_x, offset_y)``, i.e. simply
the first 18 * G channels, to its kernel, which reads them per deformable group as (dy, dx) per
kernel tap, taps in row-major order (the mmcv/DCNv2 kernel; the chunk names are historical).
torchvision's ``deform_conv2d`` reads the same layout, and its mask (G * 9 channels, group-major)
matches detectron2's last chunk after the sigmoid. So the mapping is a plain slice.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d

import fvcore.nn.weight_init as weight_init
from detectron2.layers import CNNBlockBase, Conv2d, get_norm

__all__ = ["DeformConv", "DeformBottleneckBlock", "split_offset_mask"]


def split_offset_mask(offset_mask: Tensor, modulated: bool):
    """conv2_offset's output -> (offset, mask) in torchvision's layout.

    Args:
        offset_mask: (N, 27 * G, H, W) if ``modulated`` else (N, 18 * G, H, W).

    Returns:
        offset (N, 18 * G, H, W), (dy, dx) per tap per group; mask (N, 9 * G, H, W) in (0, 1)
        (the sigmoid of the last third), or None when not ``modulated``.
    """
    if not modulated:
        return offset_mask, None
    n_offset = offset_mask.shape[1] // 3 * 2
    return offset_mask[:, :n_offset], offset_mask[:, n_offset:].sigmoid()


class DeformConv(nn.Module):
    """Deformable conv with detectron2's ``DeformConv``/``ModulatedDeformConv`` parameters
    (``weight`` (Cout, Cin / groups, kh, kw), ``bias`` or None, ``norm``, ``activation``),
    computed by ``torchvision.ops.deform_conv2d``.

    forward(x (N, Cin, H, W), offset (N, 2 * G * kh * kw, Ho, Wo), mask (N, G * kh * kw, Ho, Wo)
    or None for DCNv1) -> (N, Cout, Ho, Wo).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        *,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
        norm: Optional[nn.Module] = None,
        activation=None,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels}->{out_channels} not divisible by {groups}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.norm = norm
        self.activation = activation
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def forward(self, x: Tensor, offset: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        # torchvision's op wants one dtype; under autocast the input arrives in the low dtype
        # while the weight is fp32: compute in fp32 then (the op is not autocast-aware on CPU).
        dtype = torch.promote_types(x.dtype, self.weight.dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        x = deform_conv2d(
            x.to(dtype),
            offset.to(dtype),
            self.weight.to(dtype),
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=None if mask is None else mask.to(dtype),
        )
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deformable_groups={self.deformable_groups}, "
            f"bias={self.bias is not None}"
        )


class DeformBottleneckBlock(CNNBlockBase):
    """Detectron2's ``DeformBottleneckBlock`` (same arguments, names and shapes) on torchvision's
    deformable conv: 1x1 -> deformable 3x3 -> 1x1, plus the shortcut. The offsets (and the
    modulation mask's logits if ``deform_modulated``) come from a zero-initialised 3x3 conv
    (``conv2_offset``), so at init the sampling is the plain grid; the DCNv2 mask then starts at
    sigmoid(0) = 0.5, as in detectron2 and mmcv. With offsets 0 and mask 1 it is the plain
    ``BottleneckBlock`` (tests/test_backbones.py).

    Input (N, in_channels, H, W) -> output (N, out_channels, H / stride, W / stride).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm="BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
        deform_modulated: bool = False,
        deform_num_groups: int = 1,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.deform_modulated = deform_modulated

        if in_channels != out_channels:
            self.shortcut = Conv2d(
                in_channels,
                out_channels,
                kernel_size=1,
                stride=stride,
                bias=False,
                norm=get_norm(norm, out_channels),
            )
        else:
            self.shortcut = None

        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            kernel_size=1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        # 2 offsets (+ 1 mask value when modulated) per tap of the 3x3 kernel, per group
        offset_channels = (27 if deform_modulated else 18) * deform_num_groups
        self.conv2_offset = Conv2d(
            bottleneck_channels,
            offset_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
        )
        self.conv2 = DeformConv(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
            deformable_groups=deform_num_groups,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels,
            out_channels,
            kernel_size=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                weight_init.c2_msra_fill(layer)
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv1(x))
        offset, mask = split_offset_mask(self.conv2_offset(out), self.deform_modulated)
        out = F.relu_(self.conv2(out, offset, mask))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)
