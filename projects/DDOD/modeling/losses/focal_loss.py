"""Sigmoid focal loss (RetinaNet) as a classification-loss part of the dense detector: the
default of every base. :class:`~ddod.modeling.losses.VarifocalLoss` is the other part with the
same interface."""
from typing import Optional

from torch import Tensor, nn

from .dense_losses import focal_loss_per_anchor

__all__ = ["FocalLoss"]


class FocalLoss(nn.Module):
    """``forward(logits (P, K), labels (P,), iou_targets=None)`` -> (P,) loss per anchor, summed
    over classes; label K is background. Needs no IoU targets. No parameters or buffers."""

    needs_iou_targets = False

    def __init__(self, *, alpha: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def forward(
        self, logits: Tensor, labels: Tensor, iou_targets: Optional[Tensor] = None
    ) -> Tensor:
        return focal_loss_per_anchor(logits, labels, alpha=self.alpha, gamma=self.gamma)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}"
