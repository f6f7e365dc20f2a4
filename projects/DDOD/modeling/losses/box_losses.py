"""The box-regression term of a dense detector on its regression positives: the per-box loss
(GIoU, DIoU, CIoU or smooth-L1), its per-box weights and its normaliser.

Three weightings, all multiplied by the per-level factors of the caller:

* none (ATSS, DDOD, RetinaNet): weight 1, normalised by the positive count;
* centerness (FCOS*): weight = centerness target, normalised by the all-reduced sum of those;
* score (GFL): the detached best class probability, passed and normalised like IoU weights;
* IoU (VarifocalNet): weight = an IoU of the (detached) predicted box with its GT, at least
  1e-6. The official code weights each of its two boxes (initial, refined) by its own IoU and
  normalises by the all-reduced sum of those weights, at least 1 (``iou_sum_normalized``); the
  paper's Eq. 3 weights both by the refined box's IoU (the IACS target q) and normalises by the
  positive count. The caller passes the weights.
"""
from typing import Optional

from torch import Tensor

from ...utils.comm import all_reduce_mean
from .dense_losses import (
    ciou_loss_per_box,
    diou_loss_per_box,
    giou_loss_per_box,
    smooth_l1_loss_per_box,
)

# the box losses computed on decoded boxes, by ``loss_type``
_BOX_LOSSES = {"giou": giou_loss_per_box, "diou": diou_loss_per_box, "ciou": ciou_loss_per_box}

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
    iou_weights: Optional[Tensor] = None,
    iou_sum_normalized: bool = True,
    per_box_loss: Optional[Tensor] = None,
) -> Tensor:
    """
    Args:
        pred_boxes, target_boxes: (P, 4) XYXY decoded predictions and targets of the positives.
        pred_deltas, target_deltas: (P, 4) the same as deltas (for ``loss_type="smooth_l1"``).
        level_weights: (P,) per-level factor of each positive.
        normalizer: scalar, the positive count normaliser (used without another weighting).
        loss_type: "giou", "diou" or "ciou" (on boxes) or "smooth_l1" (on deltas; L1 with
            beta 0).
        centerness: (P,) centerness targets to weight by (FCOS*), or None.
        iou_weights: (P,) detached IoUs to weight by (VFNet), clamped at 1e-6 here; or None.
        iou_sum_normalized: normalise IoU-weighted losses by the all-reduced IoU sum (at least
            1) instead of ``normalizer``.
        per_box_loss: (P,) an already computed per-box loss to weight and normalise instead
            of ``loss_type``'s (GFL's distribution focal loss, weighted like the GIoU term);
            the box and delta arguments are then unused.

    Returns:
        a scalar: sum of weighted losses / normaliser; exactly 0 (and still connected to the
        predictions) when there are no positives.
    """
    if per_box_loss is not None:
        loss = per_box_loss
    elif loss_type in _BOX_LOSSES:
        loss = _BOX_LOSSES[loss_type](pred_boxes, target_boxes)
    else:
        loss = smooth_l1_loss_per_box(pred_deltas, target_deltas, beta=smooth_l1_beta)
    weight = level_weights
    if centerness is not None:
        # FCOS*: central positives count more; normalised by the (all-reduced) total.
        weight = level_weights * centerness
        normalizer = all_reduce_mean(centerness.sum()).clamp(min=1e-6)
    elif iou_weights is not None:
        # VFNet: well-localised positives count more.
        iou = iou_weights.detach().clamp(min=1e-6)
        weight = level_weights * iou
        if iou_sum_normalized:
            normalizer = all_reduce_mean(iou.sum()).clamp(min=1.0)
    return (loss * weight).sum() / normalizer
