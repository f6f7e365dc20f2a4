"""VarifocalNet's star-shaped box representation: deformable-conv offsets that make a 3x3 kernel
sample the nine points of a box (paper §4.3, Fig. 1).

For a location (x, y) with box distances (l, t, r, b) (pixels, from the location to the box
sides), the nine sampled points are, in kernel-tap order (row-major, k = 3 * ky + kx)::

    (x - l, y - t)   (x, y - t)   (x + r, y - t)
    (x - l, y    )   (x, y    )   (x + r, y    )
    (x - l, y + b)   (x, y + b)   (x + r, y + b)

i.e. the box's corners, edge midpoints and the location itself. (The paper prints the top-right
point as (x + l', y - t'); the reference code, and this, use x + r'.) A deformable conv already
samples tap (ky, kx) at (ky - 1, kx - 1) cells from the centre, so its offset is the wanted
displacement minus that. Offsets are laid out (dy, dx) per tap: channel 2k is the row shift and
2k + 1 the column shift, the layout of torchvision's ``deform_conv2d``, of mmcv and of the CPU op
in ./deform_conv.py.
"""
import torch
from torch import Tensor

__all__ = ["star_dcn_offsets", "scale_gradient"]


def scale_gradient(x: Tensor, factor: float) -> Tensor:
    """``x`` in the forward, ``factor`` x its gradient in the backward.

    Written ``(1 - f) * detach(x) + f * x``, the reference's form: the star offsets are computed
    from the initial box through this with f = 0.1, so the losses behind the deformable convs
    (VFL and the refined-box loss) supervise the sampling points only weakly, in RepPoints'
    manner (hyz-xmaster/VarifocalNet#9).
    """
    if factor == 1.0:
        return x
    return (1.0 - factor) * x.detach() + factor * x


def star_dcn_offsets(boxes: Tensor, stride: float, *, gradient_mul: float = 0.1) -> Tensor:
    """Deformable-conv offsets that sample the star points of each location's box.

    Args:
        boxes: (N, 4, H, W) distances (l, t, r, b) in input pixels from each location to the
            sides of its box (the head's initial box), any float dtype.
        stride: the level's stride (pixels per feature cell).
        gradient_mul: the factor on the gradient that reaches ``boxes`` through the offsets.

    Returns:
        (N, 18, H, W) offsets in feature cells, (dy, dx) per tap, taps in row-major order, in
        the dtype of ``boxes``.
    """
    n, c, h, w = boxes.shape
    if c != 4:
        raise ValueError(f"boxes must have 4 channels (l, t, r, b), got {c}.")
    ltrb = scale_gradient(boxes, gradient_mul) / stride
    left, top, right, bottom = ltrb.unbind(dim=1)  # each (N, H, W)
    zero = torch.zeros_like(left)
    # displacement of each kernel row / column from the centre, minus the regular grid's -1/0/+1
    rows = torch.stack([-top + 1, zero, bottom - 1], dim=1)  # (N, 3, H, W), ky = 0, 1, 2
    cols = torch.stack([-left + 1, zero, right - 1], dim=1)  # (N, 3, H, W), kx = 0, 1, 2
    dy = rows[:, :, None].expand(n, 3, 3, h, w)  # (N, ky, kx, H, W)
    dx = cols[:, None, :].expand(n, 3, 3, h, w)
    return torch.stack([dy, dx], dim=3).reshape(n, 18, h, w)
