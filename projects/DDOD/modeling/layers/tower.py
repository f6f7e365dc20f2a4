"""Conv towers of dense heads, with an optional deformable conv at a chosen position.

DDOD's "spatial disentanglement" is a deformable first conv in each of the two towers, so the
classification and regression branches learn their own sampling offsets. Table 6 of the paper
moves that conv to positions 1..4; ``deform_index`` selects it (0-based, or negative from the
end: -1 is the last conv), ``None`` disables it.

MOD's receptive field adaptor (RFA) is the same idea with a modulated deformable conv (DCNv2:
a sigmoid mask per tap) that keeps its bias before the GN, at the last conv in the official code:
``deform_modulated=True, deform_bias=True, deform_index=-1``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d, deform_conv2d

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


def _tv_modulated(x, offset, mask, weight, bias, padding):
    """torchvision's modulated deformable conv (CUDA), in the argument order of the CPU one."""
    return deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)


def modulated_deform_conv2d_cpu(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    padding: int,
) -> torch.Tensor:
    """torchvision's modulated ``deform_conv2d`` (stride 1, dilation 1, one offset group, output
    the input's size) from ``grid_sample`` and a 1x1 conv, for the CPU: torchvision's CPU
    backward is a scalar loop that made MOD's digits runs ~5x slower than FCOS*'s.

    Tap k of an output pixel (y, x) samples x bilinearly at (y - padding + k // kw + dy_k,
    x - padding + k % kw + dx_k), zero outside the image (grid_sample's "zeros" padding: the
    same corner rule as torchvision's op), times the mask; the (N, C*K, H, W) columns then go
    through the kernel as a 1x1 conv. The tests check values and gradients against torchvision.

    Args:
        x: (N, C, H, W); offset: (N, 2K, H, W) as (dy, dx) per tap; mask: (N, K, H, W);
        weight: (Cout, C, kh, kw); bias: (Cout,) or None.
    """
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ys = torch.arange(h, device=x.device, dtype=offset.dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=offset.dtype).view(1, 1, w)
    cols = []
    for k in range(kh * kw):
        py = ys + (k // kw - padding) + offset[:, 2 * k]
        px = xs + (k % kw - padding) + offset[:, 2 * k + 1]
        # pixel centres to grid_sample's [-1, 1] (align_corners=False: works for size 1 too)
        grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
        sample = F.grid_sample(x, grid.to(x.dtype), padding_mode="zeros", align_corners=False)
        cols.append(sample * mask[:, k : k + 1].to(x.dtype))
    cols = torch.stack(cols, dim=2).reshape(n, c * kh * kw, h, w)  # channel-major, taps inner
    return F.conv2d(cols, weight.reshape(cout, c * kh * kw, 1, 1), bias)


class DeformConvNormAct(nn.Module):
    """3x3 deformable conv (DCNv1: offsets, no modulation mask; or DCNv2 with
    ``modulated=True``) -> norm -> ReLU.

    Offsets come from their own 3x3 conv (18 = 2 x 3 x 3 channels) that is zero-initialised, so
    at the start of training the block equals a plain conv. On CUDA torchvision's op runs: it
    has a backward and is registered for autocast (it runs in fp32). torchvision lays offsets
    out as (dy, dx) per kernel tap, as mmcv does. On the CPU the same function is computed by
    :func:`deform_conv2d_cpu`, much faster than torchvision's CPU kernel; under CPU autocast its
    GEMM runs in the autocast dtype and it returns that dtype, as the plain convs of the tower
    do, so the norm after it sees the same dtype in every block.

    Modulated (DCNv2, MOD's RFA): the offset conv predicts 27 channels, 18 offsets then 9 mask
    logits; the mask is their sigmoid (0.5 at the zero initialisation, where MOD's code starts
    from normal(0, 0.01) weights: the same up to noise). torchvision's op takes the mask on
    CUDA; on the CPU :func:`modulated_deform_conv2d_cpu` computes the same function faster.

    ``bias``: None gives the conv a bias only without a norm; True/False force it (MOD's DCN
    keeps a bias before its GN).

    Input (N, Cin, H, W) -> output (N, Cout, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm: str = "GN",
        modulated: bool = False,
        bias: Optional[bool] = None,
    ):
        super().__init__()
        self.norm = _norm(norm, out_channels)
        self.modulated = modulated
        self.conv_offset = nn.Conv2d(in_channels, (3 if modulated else 2) * 3 * 3, 3, padding=1)
        bias = self.norm is None if bias is None else bias
        self.conv = DeformConv2d(in_channels, out_channels, 3, padding=1, bias=bias)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x):
        if self.modulated:
            out = self.conv_offset(x)
            offset, mask = out[:, :18], out[:, 18:].sigmoid()
            # torchvision has no autocast rule for the modulated op: run it in fp32
            # (and, like apply_deform_conv, torchvision's op while a graph is traced or exported:
            # ONNX DeformConv with its mask input)
            exporting = torch.jit.is_tracing() or torch.compiler.is_exporting()
            cpu = x.device.type == "cpu" and not exporting
            op = modulated_deform_conv2d_cpu if cpu else _tv_modulated
            # half precisions go up to fp32; fp32 and fp64 stay as they are
            dtype = torch.promote_types(x.dtype, torch.float32)
            bias = None if self.conv.bias is None else self.conv.bias.to(dtype)
            x = op(
                x.to(dtype), offset.to(dtype), mask.to(dtype), self.conv.weight.to(dtype), bias,
                self.conv.padding[0],
            )  # fmt: skip
        else:
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
    deform_modulated: bool = False,
    deform_bias: Optional[bool] = None,
) -> nn.Sequential:
    """A stack of ``num_convs`` conv blocks; block ``deform_index`` (0-based; negative counts
    from the end) is deformable, modulated (DCNv2) with ``deform_modulated``, with a bias per
    ``deform_bias`` (see :class:`DeformConvNormAct`)."""
    if deform_index is not None and not isinstance(deform_index, int):
        raise TypeError(
            f"deform_index must be an int or None, got {deform_index!r}"
            + (" (on the command line, None is written null: "
               "model.head.reg_deform_index=null)" if deform_index == "None" else "")
        )  # fmt: skip
    if deform_index is not None and not -num_convs <= deform_index < num_convs:
        raise ValueError(
            f"deform_index={deform_index} is outside the tower of {num_convs} convs "
            f"(valid: {-num_convs}..{num_convs - 1}, or None for no deformable conv)."
        )
    if deform_index is not None:
        deform_index %= num_convs
    blocks = []
    for i in range(num_convs):
        cin = in_channels if i == 0 else channels
        if i == deform_index:
            blocks.append(
                DeformConvNormAct(
                    cin, channels, norm=norm, modulated=deform_modulated, bias=deform_bias
                )
            )
        else:
            blocks.append(ConvNormAct(cin, channels, norm=norm))
    return nn.Sequential(*blocks)
