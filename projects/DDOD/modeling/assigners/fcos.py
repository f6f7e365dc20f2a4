"""FCOS's label assignment for anchor points, in the improved form of the ATSS paper ("FCOS*":
centre sampling, as in mmdetection's ``FCOSHead`` with ``center_sampling=True``).

A point of level l is a positive of a ground-truth box when

1. it lies inside the *centre region* of the box: the box's centre +- ``center_sampling_radius``
   x stride_l on each axis, clipped to the box (strictly inside, > 0 px from every side);
2. the largest of its distances to the four box sides (l, t, r, b) falls in level l's range
   ``size_ranges[l] = (lo, hi)``: lo <= max(l, t, r, b) <= hi;

and when several boxes qualify, the one of smallest area wins. Everything else is background;
nothing is ignored. An image without ground truth is all background.

The point of an anchor is the centre of its box: FCOS points are configured as stride x stride
boxes centred at (x + 0.5) * stride (``DefaultAnchorGenerator(sizes=[[s]], offset=0.5)``).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .base import AssignResult, DenseAssigner

__all__ = ["FCOSPointAssigner"]

INF = math.inf


class FCOSPointAssigner(DenseAssigner):
    """FCOS* assignment: centre sampling, per-level size ranges, smallest box wins."""

    def __init__(
        self,
        *,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        size_ranges: Sequence[Tuple[float, float]] = (
            (-1, 64),
            (64, 128),
            (128, 256),
            (256, 512),
            (512, INF),
        ),
        center_sampling_radius: float = 1.5,
    ):
        """
        Args:
            strides: stride of each level, in the order of the anchors.
            size_ranges: per level, the (lo, hi) range of max(l, t, r, b) it regresses, in pixels.
                The defaults are FCOS's for COCO.
            center_sampling_radius: half-size of the centre region, in strides of the level;
                0 or less disables centre sampling (the whole box counts).
        """
        super().__init__()
        if len(strides) != len(size_ranges):
            raise ValueError(f"{len(strides)} strides but {len(size_ranges)} size ranges.")
        self.strides = [float(s) for s in strides]
        self.size_ranges = [(float(lo), float(hi)) for lo, hi in size_ranges]
        self.center_sampling_radius = center_sampling_radius

    def assign(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        gt_boxes: Tensor,
        gt_classes: Tensor,
        *,
        valid_mask: Optional[Tensor] = None,
        pred_logits: Optional[Tensor] = None,
        pred_boxes: Optional[Tensor] = None,
    ) -> AssignResult:
        if len(num_anchors_per_level) != len(self.strides):
            raise ValueError(
                f"{len(num_anchors_per_level)} levels of anchors, but the assigner is configured "
                f"for {len(self.strides)}."
            )
        num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
        result = self.empty_result(num_anchors, anchors.device)
        if num_gt == 0 or num_anchors == 0:
            return result
        device = anchors.device
        counts = torch.tensor(num_anchors_per_level, device=device)
        stride = torch.repeat_interleave(torch.tensor(self.strides, device=device), counts)  # (R,)
        ranges = torch.repeat_interleave(torch.tensor(self.size_ranges, device=device), counts, 0)
        points = (anchors[:, :2] + anchors[:, 2:]) / 2  # (R, 2)

        # (R, M, 4) distances from each point to the sides of each box.
        x, y = points[:, None, 0], points[:, None, 1]
        ltrb = torch.stack(
            [x - gt_boxes[None, :, 0], y - gt_boxes[None, :, 1], gt_boxes[None, :, 2] - x,
             gt_boxes[None, :, 3] - y],
            dim=-1,
        )  # fmt: skip
        if self.center_sampling_radius > 0:
            centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # (M, 2)
            radius = stride[:, None, None] * self.center_sampling_radius  # (R, 1, 1)
            region_lo = torch.maximum(centers[None] - radius, gt_boxes[None, :, :2])  # (R, M, 2)
            region_hi = torch.minimum(centers[None] + radius, gt_boxes[None, :, 2:])
            inside = torch.cat([points[:, None] - region_lo, region_hi - points[:, None]], dim=-1)
            in_region = inside.min(dim=-1).values > 0
        else:
            in_region = ltrb.min(dim=-1).values > 0
        max_dist = ltrb.max(dim=-1).values
        in_range = (max_dist >= ranges[:, None, 0]) & (max_dist <= ranges[:, None, 1])

        areas = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]))[None]
        areas = areas.expand(num_anchors, num_gt).clone()
        areas[~(in_region & in_range)] = INF
        min_area, matched = areas.min(dim=1)  # ties: the lowest GT index
        positive = torch.isfinite(min_area)
        if valid_mask is not None:
            positive &= valid_mask
        result.matched_gt[positive] = matched[positive]
        result.quality[positive] = 1.0
        return result

    def extra_repr(self):
        return (
            f"strides={self.strides}, size_ranges={self.size_ranges}, "
            f"center_sampling_radius={self.center_sampling_radius}"
        )
