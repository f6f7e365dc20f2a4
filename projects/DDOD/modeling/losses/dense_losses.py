"""Per-anchor loss terms of dense detectors. Reductions and normalisation are left to the caller,
which applies per-level factors and divides by the (all-reduced) number of positives."""
import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from ...utils.comm import all_reduce_mean

__all__ = [
    "focal_loss_per_anchor",
    "giou_loss_per_box",
    "diou_loss_per_box",
    "ciou_loss_per_box",
    "smooth_l1_loss_per_box",
    "quality_bce_per_box",
    "centerness_target",
    "positive_normalizer",
    "BOX_REG_LOSS_TYPES",
]

# "giou": 1 - GIoU of the decoded boxes (ATSS, FCOS*, DDOD); "smooth_l1": smooth-L1 on the
# deltas, L1 when beta = 0 (RetinaNet); "diou" / "ciou": 1 - DIoU / CIoU of the decoded boxes
# (DDOD-Face uses DIoU).
BOX_REG_LOSS_TYPES = ("giou", "smooth_l1", "diou", "ciou")


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
    # A comparison rather than F.one_hot, whose range check waits for the device; the
    # background label K matches no column.
    classes = torch.arange(num_classes, device=labels.device)
    targets = (labels[:, None] == classes[None, :]).to(logits.dtype)
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").sum(1)


def giou_loss_per_box(pred_boxes: Tensor, target_boxes: Tensor, eps: float = 1e-6) -> Tensor:
    """1 - GIoU of corresponding XYXY boxes: (P, 4), (P, 4) -> (P,).

    The same values and gradients as ``torchvision.ops.generalized_box_iou_loss`` (the tests
    compare them), but the intersection is clamped at zero instead of computed under a boolean
    mask: torchvision's masked write makes the host wait for the GPU on every call.
    """
    lt = torch.max(pred_boxes[:, :2], target_boxes[:, :2])
    rb = torch.min(pred_boxes[:, 2:], target_boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_pred = (pred_boxes[:, 2:] - pred_boxes[:, :2]).prod(dim=1)
    area_target = (target_boxes[:, 2:] - target_boxes[:, :2]).prod(dim=1)
    union = area_pred + area_target - inter
    iou = inter / (union + eps)
    # smallest enclosing box
    enclosing = (
        torch.max(pred_boxes[:, 2:], target_boxes[:, 2:])
        - torch.min(pred_boxes[:, :2], target_boxes[:, :2])
    ).prod(dim=1)
    return 1 - iou + (enclosing - union) / (enclosing + eps)


def _iou_and_center_penalty(pred_boxes: Tensor, target_boxes: Tensor, eps: float):
    """IoU (P,) and DIoU's centre-distance penalty rho^2 / c^2 (P,) of corresponding XYXY boxes;
    c is the diagonal of the smallest enclosing box. Clamped, not masked (see giou_loss_per_box)."""
    lt = torch.max(pred_boxes[:, :2], target_boxes[:, :2])
    rb = torch.min(pred_boxes[:, 2:], target_boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_pred = (pred_boxes[:, 2:] - pred_boxes[:, :2]).prod(dim=1)
    area_target = (target_boxes[:, 2:] - target_boxes[:, :2]).prod(dim=1)
    iou = inter / (area_pred + area_target - inter + eps)
    enclosing_wh = torch.max(pred_boxes[:, 2:], target_boxes[:, 2:]) - torch.min(
        pred_boxes[:, :2], target_boxes[:, :2]
    )
    diagonal_sq = enclosing_wh.pow(2).sum(dim=1) + eps
    centre_pred = (pred_boxes[:, :2] + pred_boxes[:, 2:]) / 2
    centre_target = (target_boxes[:, :2] + target_boxes[:, 2:]) / 2
    distance_sq = (centre_pred - centre_target).pow(2).sum(dim=1)
    return iou, distance_sq / diagonal_sq


def diou_loss_per_box(pred_boxes: Tensor, target_boxes: Tensor, eps: float = 1e-7) -> Tensor:
    """1 - DIoU of corresponding XYXY boxes (Zheng et al., AAAI 2020): (P, 4), (P, 4) -> (P,).

    1 - IoU + rho^2 / c^2, with rho the distance between the box centres and c the diagonal of
    the smallest enclosing box: unlike GIoU, it keeps pulling the centres together when one box
    contains the other. Same values as ``detectron2.layers.diou_loss`` (the tests compare them).
    """
    iou, penalty = _iou_and_center_penalty(pred_boxes, target_boxes, eps)
    return 1 - iou + penalty


def ciou_loss_per_box(pred_boxes: Tensor, target_boxes: Tensor, eps: float = 1e-7) -> Tensor:
    """1 - CIoU of corresponding XYXY boxes: (P, 4), (P, 4) -> (P,).

    DIoU plus an aspect-ratio term alpha * v, v = 4 / pi^2 (atan(w_t / h_t) - atan(w_p / h_p))^2,
    alpha = v / (1 - IoU + v), alpha detached (as in the CIoU paper's implementation and
    detectron2's ``ciou_loss``, so v's gradient is not scaled by alpha's).
    """
    iou, penalty = _iou_and_center_penalty(pred_boxes, target_boxes, eps)
    wh_pred = pred_boxes[:, 2:] - pred_boxes[:, :2]
    wh_target = target_boxes[:, 2:] - target_boxes[:, :2]
    v = (4 / math.pi**2) * (
        torch.atan(wh_target[:, 0] / (wh_target[:, 1] + eps))
        - torch.atan(wh_pred[:, 0] / (wh_pred[:, 1] + eps))
    ).pow(2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return 1 - iou + penalty + alpha * v


def smooth_l1_loss_per_box(
    pred_deltas: Tensor, target_deltas: Tensor, *, beta: float = 0.0
) -> Tensor:
    """Smooth-L1 of the deltas summed over the 4 coordinates; plain L1 when ``beta`` is 0
    (mmdetection's RetinaNet uses L1): (P, 4), (P, 4) -> (P,)."""
    diff = (pred_deltas - target_deltas).abs()
    if beta < 1e-5:
        return diff.sum(dim=1)
    return torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta).sum(dim=1)


def centerness_target(points: Tensor, gt_boxes: Tensor) -> Tensor:
    """FCOS's centerness of points inside their boxes: (P, 2), (P, 4) XYXY -> (P,) in [0, 1].

    sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) with l, t, r, b the distances from the
    point to the box sides; 1 at the box centre, 0 on its border (and outside it).
    """
    left_right = torch.stack([points[:, 0] - gt_boxes[:, 0], gt_boxes[:, 2] - points[:, 0]], 1)
    top_bottom = torch.stack([points[:, 1] - gt_boxes[:, 1], gt_boxes[:, 3] - points[:, 1]], 1)
    left_right, top_bottom = left_right.clamp(min=0), top_bottom.clamp(min=0)
    ratio = (left_right.min(1).values / left_right.max(1).values.clamp(min=1e-6)) * (
        top_bottom.min(1).values / top_bottom.max(1).values.clamp(min=1e-6)
    )
    return ratio.sqrt()


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
