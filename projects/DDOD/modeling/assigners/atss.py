"""ATSS and DDOD's cost-based ATSS label assignment.

ATSS (Zhang et al., CVPR 2020) picks, for each ground truth, the k anchors per FPN level whose
centres are closest to the GT centre, and keeps those whose IoU with the GT is at least the mean
plus the standard deviation of the candidates' IoUs and whose centre lies inside the GT.

DDOD (Chen et al., ACM MM 2021, Eq. 1) keeps the geometric candidate selection but replaces the
IoU of the *anchor* by a cost of the *prediction*:

    cost = p ** (1 - alpha) * IoU(decoded predicted box, GT) ** alpha

where p is the predicted probability of the GT's class at that anchor. DDOD runs this twice with
different alphas, one assignment for the classification loss (alpha = 0.8) and one for the
regression losses (alpha = 0.5): that is its "label assignment disentanglement".

Conventions follow the reference implementation (see shared/spec/ddod.md §2): top-k by
anchor-centre distance (not by cost), an unbiased standard deviation, centre inside the GT by more
than 0.01 px, and an anchor claimed by several GTs goes to the one with the highest cost.
"""
from typing import List, Optional

import torch
from torch import Tensor

from .base import AssignResult, DenseAssigner

__all__ = ["ATSSAssigner", "CostATSSAssigner"]

# Upper bound on the size of the (GTs x anchors-of-one-level) distance block computed at once, so
# that memory stays bounded for images with very many objects.
_MAX_DISTANCE_BLOCK = 1 << 22


def _centers(boxes: Tensor) -> Tensor:
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of corresponding XYXY boxes: (..., 4), (..., 4) -> (...)."""
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    return inter / (area1 + area2 - inter).clamp(min=eps)


class ATSSAssigner(DenseAssigner):
    """Adaptive Training Sample Selection on the IoU of anchors with the ground truth."""

    def __init__(self, *, topk: int = 9, center_eps: float = 0.01):
        """
        Args:
            topk: candidates per FPN level and GT, by distance of anchor centre to GT centre.
            center_eps: an anchor centre must be inside the GT by more than this many pixels.
        """
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}.")
        self.topk = topk
        self.center_eps = center_eps

    def candidate_quality(
        self,
        anchors: Tensor,
        cand_idx: Tensor,
        gt_boxes: Tensor,
        gt_classes: Tensor,
        pred_logits: Optional[Tensor],
        pred_boxes: Optional[Tensor],
    ) -> Tensor:
        """Quality of each (GT, candidate) pair, (M, C): here the anchor's IoU with the GT."""
        return aligned_box_iou(anchors[cand_idx], gt_boxes[:, None, :])

    def select_candidates(
        self, anchors: Tensor, num_anchors_per_level: List[int], gt_boxes: Tensor, valid_mask
    ):
        """For each GT, the ``topk`` nearest valid anchors on each level.

        Returns:
            cand_idx: (M, C) int64 anchor indices, C = sum over levels of min(topk, level size).
            cand_ok: (M, C) bool, False where a level had fewer valid anchors than requested.
        """
        anchor_ctr = _centers(anchors)
        gt_ctr = _centers(gt_boxes)
        level_starts = [sum(num_anchors_per_level[:i]) for i in range(len(num_anchors_per_level))]
        # GTs are processed in chunks so that the (GTs x level anchors) distance block stays
        # bounded, however many objects an image has.
        chunk = max(1, _MAX_DISTANCE_BLOCK // max(max(num_anchors_per_level), 1))
        idx_chunks, ok_chunks = [], []
        for g0 in range(0, gt_boxes.shape[0], chunk):
            g = gt_ctr[g0 : g0 + chunk]
            idx_levels, ok_levels = [], []
            for start, n in zip(level_starts, num_anchors_per_level):
                if n == 0:
                    continue
                ctr = anchor_ctr[start : start + n]
                # Squared distances rank like distances; skipping the sqrt changes no order.
                dist = (g[:, None, 0] - ctr[None, :, 0]) ** 2 + (g[:, None, 1] - ctr[None, :, 1]) ** 2
                if valid_mask is not None:
                    dist.masked_fill_(~valid_mask[None, start : start + n], float("inf"))
                d, idx = dist.topk(min(self.topk, n), dim=1, largest=False)
                idx_levels.append(idx + start)
                ok_levels.append(torch.isfinite(d))
            idx_chunks.append(torch.cat(idx_levels, dim=1))
            ok_chunks.append(torch.cat(ok_levels, dim=1))
        return torch.cat(idx_chunks, dim=0), torch.cat(ok_chunks, dim=0)

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
        num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
        result = self.empty_result(num_anchors, anchors.device)
        if num_gt == 0 or num_anchors == 0:
            return result

        cand_idx, cand_ok = self.select_candidates(
            anchors, num_anchors_per_level, gt_boxes, valid_mask
        )
        quality = self.candidate_quality(
            anchors, cand_idx, gt_boxes, gt_classes, pred_logits, pred_boxes
        )

        # Adaptive threshold per GT: mean + unbiased std of its candidates' quality.
        okf = cand_ok.float()
        n = okf.sum(dim=1)
        mean = (quality * okf).sum(dim=1) / n.clamp(min=1)
        var = (((quality - mean[:, None]) ** 2) * okf).sum(dim=1) / (n - 1).clamp(min=1)
        threshold = mean + var.sqrt()
        is_pos = cand_ok & (quality >= threshold[:, None])

        # The anchor centre must lie inside the GT.
        ctr = _centers(anchors)[cand_idx]  # (M, C, 2)
        dist_to_sides = torch.cat([ctr - gt_boxes[:, None, :2], gt_boxes[:, None, 2:] - ctr], -1)
        is_pos &= dist_to_sides.min(dim=-1).values > self.center_eps

        # An anchor positive for several GTs goes to the GT with the highest quality (ties: the
        # lowest GT index, like an argmax over GTs).
        gt_i, cand_j = is_pos.nonzero(as_tuple=True)
        if gt_i.numel() == 0:
            return result
        anchor_i = cand_idx[gt_i, cand_j]
        q = quality[gt_i, cand_j]
        best = torch.full((num_anchors,), -1.0, device=anchors.device)
        best.scatter_reduce_(0, anchor_i, q, reduce="amax")
        is_best = q == best[anchor_i]
        winner = torch.full((num_anchors,), num_gt, dtype=torch.int64, device=anchors.device)
        winner.scatter_reduce_(0, anchor_i[is_best], gt_i[is_best], reduce="amin")
        assigned = winner < num_gt
        result.matched_gt[assigned] = winner[assigned]
        result.quality[assigned] = best[assigned]
        return result


class CostATSSAssigner(ATSSAssigner):
    """DDOD's cost-based ATSS: quality = p ** (1 - alpha) * IoU(predicted box, GT) ** alpha.

    ``alpha`` weighs box quality against classification confidence; the paper uses 0.8 for the
    classification assignment and 0.5 for the regression assignment. With ``alpha=1`` and
    predicted boxes equal to the anchors this reduces to :class:`ATSSAssigner`.
    """

    uses_predictions = True

    def __init__(self, *, alpha: float, topk: int = 9, center_eps: float = 0.01):
        super().__init__(topk=topk, center_eps=center_eps)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        self.alpha = alpha

    def candidate_quality(self, anchors, cand_idx, gt_boxes, gt_classes, pred_logits, pred_boxes):
        iou = aligned_box_iou(pred_boxes[cand_idx], gt_boxes[:, None, :])
        prob = pred_logits[cand_idx, gt_classes[:, None]].sigmoid()
        return prob ** (1 - self.alpha) * iou**self.alpha

    def extra_repr(self):
        return f"alpha={self.alpha}, topk={self.topk}"
