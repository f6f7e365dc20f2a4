"""The box-regression term of a dense detector on its regression positives: the per-box loss
(GIoU or smooth-L1), its per-box weights and its normaliser.

Three weightings, all multiplied by the per-level factors of the caller:

* none (ATSS, DDOD, RetinaNet): weight 1, normalised by the positive count;
* centerness (FCOS*): weight = centerness target, normalised by the all-reduced sum of those;
* IoU (VarifocalNet): weight = IoU of the (detached) predicted box with its GT, at least 1e-6,
  normalised by the all-reduced sum of those, at least 1. VFNet applies it to its initial and
  its refined box, each with its own IoU.
"""
from typing import Optional

from torch import Tensor

from ...utils.comm import all_reduce_mean
from ..assigners.atss import aligned_box_iou
from .dense_losses import giou_loss_per_box, smooth_l1_loss_per_box

__all__ = ["weighted_box_loss"]


def weighted_box_loss(
    pred_boxes: Tensor,
    target_boxes: Tensor,
    pred_deltas: Tensor,
    target_deltas: Tensor,
    level_weights: Tensor,
    normalizer: Tensor,
    *,
    loss_type: str = "giou",
    smooth_l1_beta: float = 0.0,
    centerness: Optional[Tensor] = None,
    iou_weighted: bool = False,
) -> Tensor:
    """
    Args:
        pred_boxes, target_boxes: (P, 4) XYXY decoded predictions and targets of the positives.
        pred_deltas, target_deltas: (P, 4) the same as deltas (for ``loss_type="smooth_l1"``).
        level_weights: (P,) per-level factor of each positive.
        normalizer: scalar, the positive count normaliser (used without another weighting).
        loss_type: "giou" (on boxes) or "smooth_l1" (on deltas; L1 with beta 0).
        centerness: (P,) centerness targets to weight by (FCOS*), or None.
        iou_weighted: weight by the detached IoU of each predicted box with its target (VFNet).

    Returns:
        a scalar: sum of weighted losses / normaliser; exactly 0 (and still connected to the
        predictions) when there are no positives.
    """
    if loss_type == "giou":
        loss = giou_loss_per_box(pred_boxes, target_boxes)
    else:
        loss = smooth_l1_loss_per_box(pred_deltas, target_deltas, beta=smooth_l1_beta)
    weight = level_weights
    if centerness is not None:
        # FCOS*: central positives count more; normalised by the (all-reduced) total.
        weight = level_weights * centerness
        normalizer = all_reduce_mean(centerness.sum()).clamp(min=1e-6)
    elif iou_weighted:
        # VFNet: well-localised positives count more (the reference's per-box IoU weights).
        iou = aligned_box_iou(pred_boxes.detach(), target_boxes).clamp(min=1e-6)
        weight = level_weights * iou
        normalizer = all_reduce_mean(iou.sum()).clamp(min=1.0)
    return (loss * weight).sum() / normalizer
