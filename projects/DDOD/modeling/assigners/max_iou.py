"""RetinaNet's label assignment: IoU of each anchor with its best-overlapping ground truth.

Semantics mirror detectron2's ``Matcher(thresholds=[neg_iou_thresh, pos_iou_thresh],
labels=[0, -1, 1], allow_low_quality_matches=...)`` (and mmdetection's ``MaxIoUAssigner``):

* IoU >= ``pos_iou_thresh``: positive, matched to the GT of highest IoU;
* IoU < ``neg_iou_thresh``: background;
* in between: ignored (no loss);
* with ``allow_low_quality_matches``, every GT also claims the anchor(s) with which it has its
  highest IoU (ties included), so that no GT is left without a positive. Such an anchor keeps
  its highest-IoU GT as the match, as in detectron2.

Two differences from ``Matcher``, both for robustness: a GT that overlaps no anchor at all
(highest IoU 0) claims nothing (``Matcher`` would make every zero-IoU anchor positive), and
padding anchors (``valid_mask`` False) are never matched.

The paper's label-assignment disentanglement for RetinaNet (Table 1) is two instances of this
class: one with the classification thresholds, one with the regression thresholds. For the
regression assigner only the positives matter (regression losses ignore negatives).
"""
from typing import List, Optional

from torch import Tensor

from detectron2.structures import Boxes, pairwise_iou

from .base import IGNORE, AssignResult, DenseAssigner

__all__ = ["MaxIoUAssigner"]


class MaxIoUAssigner(DenseAssigner):
    """Positives by IoU of the *anchor* (not the prediction) with the ground truth."""

    def __init__(
        self,
        *,
        pos_iou_thresh: float = 0.5,
        neg_iou_thresh: float = 0.4,
        allow_low_quality_matches: bool = True,
    ):
        """
        Args:
            pos_iou_thresh: anchors with IoU >= this are positive.
            neg_iou_thresh: anchors with IoU < this are background; those in
                [neg_iou_thresh, pos_iou_thresh) are ignored. Must be <= pos_iou_thresh.
            allow_low_quality_matches: each GT also claims its highest-IoU anchor(s).
        """
        super().__init__()
        if not 0.0 < neg_iou_thresh <= pos_iou_thresh:
            raise ValueError(
                "Need 0 < neg_iou_thresh <= pos_iou_thresh, "
                f"got {neg_iou_thresh}, {pos_iou_thresh}."
            )
        self.pos_iou_thresh = pos_iou_thresh
        self.neg_iou_thresh = neg_iou_thresh
        self.allow_low_quality_matches = allow_low_quality_matches

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
        iou = pairwise_iou(Boxes(gt_boxes), Boxes(anchors))  # (M, R)
        if valid_mask is not None:
            # -1 keeps padding anchors out of both the thresholds and the low-quality matches.
            iou[:, ~valid_mask] = -1.0
        max_iou, matched = iou.max(dim=0)  # (R,)
        positive = max_iou >= self.pos_iou_thresh
        ignored = (max_iou >= self.neg_iou_thresh) & ~positive
        if self.allow_low_quality_matches:
            best_per_gt = iou.max(dim=1, keepdim=True).values  # (M, 1)
            low_quality = ((iou == best_per_gt) & (best_per_gt > 0)).any(dim=0)
            positive |= low_quality
            ignored &= ~low_quality
        result.matched_gt[positive] = matched[positive]
        result.matched_gt[ignored] = IGNORE
        result.quality[positive] = max_iou[positive]
        return result

    def extra_repr(self):
        return (
            f"pos_iou_thresh={self.pos_iou_thresh}, neg_iou_thresh={self.neg_iou_thresh}, "
            f"allow_low_quality_matches={self.allow_low_quality_matches}"
        )
