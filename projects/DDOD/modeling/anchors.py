"""Anchor helpers: which anchors lie in an image's own area (not in batch padding)."""
import math
from typing import List, Sequence, Tuple

import torch
from torch import Tensor


def valid_anchor_mask(
    grid_sizes: Sequence[Tuple[int, int]],
    strides: Sequence[int],
    num_cell_anchors: int,
    image_sizes: Sequence[Tuple[int, int]],
    size_divisibility: int,
    device=None,
) -> Tensor:
    """Mask of anchors whose grid cell lies within each image's padded-to-``size_divisibility``
    area (the reference's "valid flags").

    Images of a batch are padded to a common canvas; anchors on the extra padding of a smaller
    image see no image content and take no part in assignment or losses.

    Args:
        grid_sizes: (Hl, Wl) of each level's feature map.
        strides: stride of each level.
        num_cell_anchors: anchors per location A.
        image_sizes: (h, w) of each image before batch padding.
        size_divisibility: each image counts as padded up to a multiple of this (0: no padding).

    Returns:
        (N, R) bool, R = sum over levels of Hl * Wl * A, in detectron2's anchor order
        (row-major over locations, the A anchors of a location contiguous).
    """
    div = max(size_divisibility, 1)
    padded = torch.tensor(
        [[math.ceil(h / div) * div, math.ceil(w / div) * div] for h, w in image_sizes],
        device=device,
        dtype=torch.float64,
    )
    masks = []
    for (gh, gw), stride in zip(grid_sizes, strides):
        valid_h = torch.ceil(padded[:, 0] / stride)  # (N,)
        valid_w = torch.ceil(padded[:, 1] / stride)
        ys = torch.arange(gh, device=device)
        xs = torch.arange(gw, device=device)
        m = (ys[None, :, None] < valid_h[:, None, None]) & (xs[None, None, :] < valid_w[:, None, None])
        masks.append(m[..., None].expand(-1, -1, -1, num_cell_anchors).reshape(len(image_sizes), -1))
    return torch.cat(masks, dim=1)
