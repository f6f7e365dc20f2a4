"""Generalized Focal Loss (Li et al., NeurIPS 2020): its two losses as parts of the dense detector.

* Quality focal loss (Eq. 5), a classification loss whose target at a positive's class is the
  IoU y of the predicted box with its ground truth (0 elsewhere and on negatives)::

      QFL(sigma) = -|y - sigma|^beta ((1 - y) log(1 - sigma) + y log(sigma))

  Written as BCE-with-logits times the modulating factor (no log of a sigmoid).
* Distribution focal loss (Eq. 6) on each side's discrete distribution over 0..n, with the
  target distance y between the bins y_i <= y < y_{i+1} = y_i + 1::

      DFL(S) = -((y_{i+1} - y) log S_i + (y - y_i) log S_{i+1})
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "quality_focal_loss",
    "QualityFocalLoss",
    "distribution_focal_loss",
    "DistributionFocalLoss",
]


def quality_focal_loss(logits: Tensor, targets: Tensor, *, beta: float = 2.0) -> Tensor:
    """(P, K) logits, (P, K) soft targets in [0, 1] -> (P, K) unreduced QFL."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ.")
    targets = targets.to(logits.dtype)
    scale = (logits.sigmoid() - targets).abs().pow(beta)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * scale


class QualityFocalLoss(nn.Module):
    """Quality focal loss as a classification-loss part (the interface of ``FocalLoss`` and
    ``VarifocalLoss``): ``forward(logits (P, K), labels (P,), iou_targets (P,))`` -> (P,).
    ``needs_iou_targets``: the detector supplies the IoU of each anchor's scored box with its
    GT (detached). Unlike VFL, an IoU of 0 needs no clamp: a positive with y = 0 is trained like
    a negative at its class, as in GFL. No parameters or buffers."""

    needs_iou_targets = True

    def __init__(self, *, beta: float = 2.0):
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}.")
        self.beta = float(beta)

    def forward(self, logits: Tensor, labels: Tensor, iou_targets: Tensor) -> Tensor:
        if iou_targets is None:
            raise ValueError("QualityFocalLoss needs the IoU targets of the positives.")
        classes = torch.arange(logits.shape[1], device=labels.device)
        onehot = labels[:, None] == classes[None, :]  # background K matches no class
        y = iou_targets.detach().to(logits.dtype).clamp(min=0.0)[:, None]
        targets = torch.where(onehot, y, y.new_zeros(()))
        return quality_focal_loss(logits, targets, beta=self.beta).sum(dim=1)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def distribution_focal_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """(..., n + 1) logits over the bins 0..n, (...) targets in [0, n) -> (...) DFL."""
    left = targets.floor().long()
    right = left + 1
    w_left = right.to(targets.dtype) - targets
    w_right = targets - left.to(targets.dtype)
    log_probs = F.log_softmax(logits.float(), dim=-1)
    return -(
        log_probs.gather(-1, left[..., None])[..., 0] * w_left
        + log_probs.gather(-1, right[..., None])[..., 0] * w_right
    )


class DistributionFocalLoss(nn.Module):
    """DFL as the detector's ``box_distribution_loss`` part: ``forward(logits (P, 4, n + 1),
    target_distances (P, 4))`` -> (P,) the mean over the four sides. Targets (in the same units
    as the bins: strides for GFL) are clamped to [0, n - 0.01] (a target beyond the last bin
    cannot be represented; GFL's clamp). No parameters or buffers."""

    def __init__(self, *, reg_max: int = 16):
        super().__init__()
        self.reg_max = int(reg_max)

    def forward(self, logits: Tensor, target_distances: Tensor) -> Tensor:
        if logits.shape[-1] != self.reg_max + 1:
            raise ValueError(
                f"DistributionFocalLoss(reg_max={self.reg_max}) got {logits.shape[-1]} bins."
            )
        targets = target_distances.float().clamp(min=0.0, max=self.reg_max - 0.01)
        return distribution_focal_loss(logits, targets).mean(dim=-1)

    def extra_repr(self) -> str:
        return f"reg_max={self.reg_max}"
