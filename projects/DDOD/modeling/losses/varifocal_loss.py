"""Varifocal loss (VarifocalNet, Zhang et al., CVPR 2021, Eq. 2): a classification loss whose
target is the IoU-aware classification score (IACS) q, i.e. the IoU of the box the detector
scores with its ground truth at the GT's class and 0 elsewhere.

    VFL(p, q) = -q (q log p + (1 - q) log(1 - p))   if q > 0   (positives, weighted by q)
              = -alpha p^gamma log(1 - p)            if q = 0   (negatives, focal-style)

Written as a weight times BCE-with-logits (never log of a sigmoid: the reference's NaN reports,
hyz-xmaster/VarifocalNet#26, come from huge logits). The weight keeps ``p`` attached, as focal
loss does, so the negatives' modulating factor also receives gradient.

Any base of the framework can use it in place of focal loss (``DDOD(cls_loss=VarifocalLoss())``
or ``MODEL.DDOD.CLS_LOSS: "varifocal"``); the detector then supplies the IoU target of the box
it scores (VFNet's refined box, the single predicted box of the other heads).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["varifocal_loss", "VarifocalLoss", "IOU_TARGET_MIN"]

# A positive's IoU target is clamped here: an IoU of exactly 0 would silently turn the positive
# into a negative, since VFL tells them apart by q > 0 (hyz-xmaster/VarifocalNet#24).
IOU_TARGET_MIN = 1e-6


def varifocal_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
) -> Tensor:
    """Element-wise varifocal loss.

    Args:
        logits: (P, K) classification logits.
        targets: (P, K) IACS targets in [0, 1]: the IoU (> 0) at a positive's class, 0 elsewhere.
        alpha: weight of the negatives' term.
        gamma: exponent of the negatives' modulating factor |p - q|^gamma (= p^gamma at q = 0).
        iou_weighted: weight the positives by q (the paper's "q weighting"); 1 otherwise.

    Returns:
        (P, K) loss of every (anchor, class) pair, unreduced.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ.")
    targets = targets.to(logits.dtype)
    positive = targets > 0
    p = logits.sigmoid()
    pos_weight = targets if iou_weighted else torch.ones_like(targets)
    weight = torch.where(positive, pos_weight, alpha * (p - targets).abs().pow(gamma))
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight


class VarifocalLoss(nn.Module):
    """Varifocal loss as a classification-loss part of the dense detector.

    Same interface as :class:`~ddod.modeling.losses.FocalLoss`: ``forward(logits, labels,
    iou_targets)`` -> per-anchor loss summed over classes. ``needs_iou_targets`` tells the
    detector to compute the IoU of the scored box with the ground truth for each positive.
    No parameters or buffers, so it adds no checkpoint keys.
    """

    needs_iou_targets = True

    def __init__(self, *, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True):
        """
        Args:
            alpha: weight of the negatives (>= 0; VFNet's 0.75).
            gamma: focusing exponent of the negatives (>= 0; VFNet's 2).
            iou_weighted: weight positives by their IoU target (VFNet); False weights them 1.
        """
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}.")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}.")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.iou_weighted = bool(iou_weighted)

    def forward(self, logits: Tensor, labels: Tensor, iou_targets: Tensor) -> Tensor:
        """
        Args:
            logits: (P, K) classification logits.
            labels: (P,) int64 in [0, K]; K is background.
            iou_targets: (P,) IoU of each anchor's scored box with its ground truth; read only
                where the label is a class (clamped to at least ``IOU_TARGET_MIN`` there).

        Returns:
            (P,) loss of each anchor, summed over its K classes.
        """
        if iou_targets is None:
            raise ValueError("VarifocalLoss needs the IoU targets of the positives.")
        num_classes = logits.shape[1]
        classes = torch.arange(num_classes, device=labels.device)
        # one-hot by comparison (no range check, so no device sync); background K matches nothing
        onehot = labels[:, None] == classes[None, :]
        q = iou_targets.detach().to(logits.dtype).clamp(min=IOU_TARGET_MIN)[:, None]
        targets = torch.where(onehot, q, q.new_zeros(()))
        return varifocal_loss(
            logits, targets, alpha=self.alpha, gamma=self.gamma, iou_weighted=self.iou_weighted
        ).sum(dim=1)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, iou_weighted={self.iou_weighted}"
