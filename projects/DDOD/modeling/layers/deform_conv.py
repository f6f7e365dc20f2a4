"""Deformable convolution (DCNv1) computed with ``grid_sample``, for CPU training.

torchvision's ``deform_conv2d`` is the reference op and is what runs on CUDA. Its CPU backward,
however, is a slow scalar loop: on the 2-core machine this project is developed on it took about
two thirds of a whole DDOD training step (benchmarks/deform_conv_cpu.py prints the comparison).
This implementation samples the nine taps with ``F.grid_sample`` (vectorised forward and
backward) and applies the kernel as one matrix product. It computes the same function as
torchvision (zero outside the image, bilinear inside, (dy, dx) offset layout); the tests check
forward and gradients against torchvision.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def deform_conv2d_grid_sample(
    x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor = None, *, padding: int = 1
) -> Tensor:
    """Stride-1 deformable conv with one offset group.

    Args:
        x: (N, Cin, H, W) input.
        offset: (N, 2*kh*kw, Ho, Wo) offsets, (dy, dx) per kernel tap, taps in row-major order.
        weight: (Cout, Cin, kh, kw); bias: (Cout,) or None.
        padding: zero padding on each side.

    Returns:
        (N, Cout, Ho, Wo).
    """
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    k = kh * kw
    dtype, device = x.dtype, x.device
    tap_y = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw)  # (K,)
    tap_x = torch.arange(kw, device=device, dtype=dtype).repeat(kh)
    base_y = torch.arange(ho, device=device, dtype=dtype) - padding  # (Ho,)
    base_x = torch.arange(wo, device=device, dtype=dtype) - padding
    off = offset.view(n, k, 2, ho, wo)
    py = base_y[None, None, :, None] + tap_y[None, :, None, None] + off[:, :, 0]  # (N, K, Ho, Wo)
    px = base_x[None, None, None, :] + tap_x[None, :, None, None] + off[:, :, 1]
    # Pixel coordinates -> grid_sample's [-1, 1] (align_corners=False: pixel i spans a unit cell,
    # so a size-1 dimension needs no special case).
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
    sampled = F.grid_sample(
        x, grid.view(n, k * ho, wo, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (N, Cin, K*Ho, Wo)
    cols = sampled.view(n, c * k, ho * wo)
    # bmm with the weight expanded over the batch: matmul's broadcasting path copies the 9x-sized
    # column tensor into a transposed layout, forward and backward (measured ~35% slower).
    out = torch.bmm(weight.view(c_out, c * k).expand(n, -1, -1), cols).view(n, c_out, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
