from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


class AssignResult(NamedTuple):
    """What an assigner returns for one image.

    Attributes:
        matched_gt: (R,) int64. Index of the ground-truth box each anchor is assigned to, or
            ``BACKGROUND`` (-1). Anchors excluded from training (e.g. padding anchors) are
            ``IGNORE`` (-2).
        quality: (R,) float32. The assignment score of each positive anchor with its ground truth
            (IoU, or DDOD's cost); 0 elsewhere.
    """

    matched_gt: Tensor
    quality: Tensor


BACKGROUND = -1
IGNORE = -2


class DenseAssigner(nn.Module):
    """Base class of label assigners for dense detectors. Parameter-free; runs without gradient.

    Subclasses implement :meth:`assign` for one image. Cost-based assigners (DDOD) also use the
    detached predictions; ``uses_predictions`` tells the detector whether to decode them.

    Two optional inputs only some assigners take, so that a detector can pass them to any
    assigner: ``grid_sizes`` is a hint (assigners with ``takes_grid_sizes`` may use it to go
    faster, the others ignore it); ``candidates`` are precomputed ATSS candidates and only
    assigners with ``takes_candidates`` accept them.
    """

    uses_predictions: bool = False
    takes_grid_sizes: bool = False
    takes_candidates: bool = False

    @torch.no_grad()
    def forward(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        gt_boxes: Tensor,
        gt_classes: Tensor,
        *,
        valid_mask: Optional[Tensor] = None,
        pred_logits: Optional[Tensor] = None,
        pred_boxes: Optional[Tensor] = None,
        grid_sizes: Optional[Sequence[Tuple[int, int]]] = None,
        candidates: Optional[Tuple[Tensor, Tensor]] = None,
    ) -> AssignResult:
        """
        Args:
            anchors: (R, 4) XYXY anchors of one image, all levels concatenated.
            num_anchors_per_level: the number of anchors on each level; sums to R.
            gt_boxes: (M, 4) XYXY ground-truth boxes; gt_classes: (M,) int64 in [0, K).
            valid_mask: (R,) bool, False for anchors that take no part (padding anchors).
            pred_logits: (R, K) classification logits (cost-based assigners only).
            pred_boxes: (R, 4) XYXY decoded predicted boxes (cost-based assigners only).
            grid_sizes: (H, W) of each level's feature map, when the anchors are one per location
                in detectron2's order; lets grid-aware assigners skip dense distance blocks.
            candidates: (cand_idx, cand_ok), both (M, C), from ``select_candidates`` of an
                assigner for which ``same_candidates_as`` holds, on the same anchors, GTs and
                valid mask: reuses them instead of selecting again.
        """
        if sum(num_anchors_per_level) != anchors.shape[0]:
            raise ValueError(
                f"num_anchors_per_level sums to {sum(num_anchors_per_level)}, "
                f"but there are {anchors.shape[0]} anchors."
            )
        if self.uses_predictions and (pred_logits is None or pred_boxes is None):
            raise ValueError(f"{type(self).__name__} needs pred_logits and pred_boxes.")
        extra = {}
        if grid_sizes is not None and self.takes_grid_sizes:
            extra["grid_sizes"] = grid_sizes
        if candidates is not None:
            if not self.takes_candidates:
                raise ValueError(f"{type(self).__name__} does not take precomputed candidates.")
            extra["candidates"] = candidates
        # Assignment decides integer targets only; do it in fp32 whatever the autocast state.
        with torch.autocast(anchors.device.type, enabled=False):
            result = self.assign(
                anchors.float(),
                num_anchors_per_level,
                gt_boxes.float(),
                gt_classes,
                valid_mask=valid_mask,
                pred_logits=None if pred_logits is None else pred_logits.float(),
                pred_boxes=None if pred_boxes is None else pred_boxes.float(),
                **extra,
            )
        if valid_mask is not None:
            # torch.where, not a masked write: no host-device synchronisation on a GPU.
            result = result._replace(matched_gt=torch.where(valid_mask, result.matched_gt, IGNORE))
        return result

    def assign(self, anchors, num_anchors_per_level, gt_boxes, gt_classes, **kwargs):
        raise NotImplementedError

    def same_candidates_as(self, other: "DenseAssigner") -> bool:
        """Whether one ``select_candidates`` can serve both this assigner and ``other``.
        No, unless a candidate-based assigner says otherwise."""
        return False

    @staticmethod
    def empty_result(num_anchors: int, device) -> AssignResult:
        return AssignResult(
            torch.full((num_anchors,), BACKGROUND, dtype=torch.int64, device=device),
            torch.zeros(num_anchors, dtype=torch.float32, device=device),
        )
