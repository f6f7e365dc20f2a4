"""Conv towers of dense heads, with an optional deformable conv at a chosen position.

DDOD's "spatial disentanglement" is a deformable first conv in each of the two towers, so the
classification and regression branches learn their own sampling offsets. Table 6 of the paper
moves that conv to positions 1..4; ``deform_index`` selects it (0-based), ``None`` disables it.
"""
from typing import Optional

import torch
from torch import nn
from torchvision.ops import DeformConv2d

from detectron2.layers import get_norm

from .deform_conv import deform_conv2d_cpu


def _norm(norm: str, channels: int) -> Optional[nn.Module]:
    if not norm:
        return None
    return get_norm(norm, channels)


class ConvNormAct(nn.Module):
    """3x3 conv -> norm -> ReLU. The conv has a bias only when there is no norm after it."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "GN"):
        super().__init__()
        self.norm = _norm(norm, out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=self.norm is None)

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return torch.relu(x)


def apply_deform_conv(conv: DeformConv2d, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Run torchvision's ``DeformConv2d`` module ``conv`` (stride 1) on ``x`` with ``offset``
    (N, 2*kh*kw, H, W), (dy, dx) per tap: torchvision's op on CUDA, :func:`deform_conv2d_cpu`
    (the same function, much faster) on the CPU. While a graph is being traced or exported
    (TorchScript, ONNX) it is torchvision's op on every device: one ``torchvision::deform_conv2d``
    node, which ONNX opset 19 has as ``DeformConv`` (ddod/export/)."""
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        return conv(x, offset)
    if x.device.type == "cpu":
        return deform_conv2d_cpu(x, offset, conv.weight, conv.bias, padding=conv.padding[0])
    return conv(x, offset)


class DeformConvNormAct(nn.Module):
    """3x3 deformable conv (DCNv1: offsets, no modulation mask) -> norm -> ReLU.

    Offsets come from their own 3x3 conv (18 = 2 x 3 x 3 channels) that is zero-initialised, so
    at the start of training the block equals a plain conv. On CUDA torchvision's op runs: it
    has a backward and is registered for autocast (it runs in fp32). torchvision lays offsets
    out as (dy, dx) per kernel tap, as mmcv does. On the CPU the same function is computed by
    :func:`deform_conv2d_cpu`, much faster than torchvision's CPU kernel; under CPU autocast its
    GEMM runs in the autocast dtype and it returns that dtype, as the plain convs of the tower
    do, so the norm after it sees the same dtype in every block.

    Input (N, Cin, H, W) -> output (N, Cout, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "GN"):
        super().__init__()
        self.norm = _norm(norm, out_channels)
        self.conv_offset = nn.Conv2d(in_channels, 2 * 3 * 3, 3, padding=1, bias=True)
        self.conv = DeformConv2d(in_channels, out_channels, 3, padding=1, bias=self.norm is None)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x):
        x = apply_deform_conv(self.conv, x, self.conv_offset(x))
        if self.norm is not None:
            x = self.norm(x)
        return torch.relu(x)


def build_conv_tower(
    in_channels: int,
    channels: int,
    num_convs: int,
    *,
    norm: str = "GN",
    deform_index: Optional[int] = None,
) -> nn.Sequential:
    """A stack of ``num_convs`` conv blocks; block ``deform_index`` (0-based) is deformable."""
    if deform_index is not None and not 0 <= deform_index < num_convs:
        raise ValueError(
            f"deform_index={deform_index} is outside the tower of {num_convs} convs "
            f"(valid: 0..{num_convs - 1}, or None for no deformable conv)."
        )
    blocks = []
    for i in range(num_convs):
        block_cls = DeformConvNormAct if i == deform_index else ConvNormAct
        blocks.append(block_cls(in_channels if i == 0 else channels, channels, norm=norm))
    return nn.Sequential(*blocks)
