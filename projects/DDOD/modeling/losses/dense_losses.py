"""Per-anchor loss terms of dense detectors. Reductions and normalisation are left to the caller,
which applies per-level factors and divides by the (all-reduced) number of positives."""
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from ...utils.comm import all_reduce_mean

__all__ = ["focal_loss_per_anchor", "giou_loss_per_box", "quality_bce_per_box", "positive_normalizer"]


def focal_loss_per_anchor(
    logits: Tensor, labels: Tensor, *, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Sigmoid focal loss summed over classes.

    Args:
        logits: (P, K) classification logits.
        labels: (P,) int64 in [0, K]; K means background (an all-zero target row).

    Returns:
        (P,) loss of each anchor.
    """
    num_classes = logits.shape[1]
    targets = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(logits.dtype)
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").sum(1)


def giou_loss_per_box(pred_boxes: Tensor, target_boxes: Tensor) -> Tensor:
    """1 - GIoU of corresponding XYXY boxes: (P, 4), (P, 4) -> (P,)."""
    return generalized_box_iou_loss(pred_boxes, target_boxes, reduction="none", eps=1e-6)


def quality_bce_per_box(quality_logits: Tensor, iou_targets: Tensor) -> Tensor:
    """BCE of the IoU ("quality") branch against soft IoU targets in [0, 1]: (P,), (P,) -> (P,)."""
    return F.binary_cross_entropy_with_logits(quality_logits, iou_targets, reduction="none")


def positive_normalizer(pos_mask: Tensor) -> Tensor:
    """The loss normaliser of DDOD/ATSS: sum over images of max(#positives, 1), averaged over
    processes, at least 1.

    Args:
        pos_mask: (N, R) bool, positive anchors of each image in the local batch.

    Returns:
        a float32 scalar tensor.
    """
    per_image = pos_mask.sum(dim=1).clamp(min=1).sum().float()
    return all_reduce_mean(per_image).clamp(min=1.0)
