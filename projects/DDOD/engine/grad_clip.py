"""Optimizers that clip the gradient norm before every step.

detectron2 clips gradients by subclassing the optimizer (``maybe_add_gradient_clipping``, for
yacs configs); this does the same for LazyConfigs, with the clipping arguments as constructor
keywords so that a config only changes its optimizer's target::

    optimizer._target_ = SGDWithGradClip
    optimizer.clip_max_norm = 10.0

Clipping happens inside ``step()``: under AMP, detectron2's ``AMPTrainer`` calls
``GradScaler.step(optimizer)``, which unscales the gradients before calling ``step()`` (and skips
it on inf/NaN), so the norm is that of the true gradients. The clipping arguments are attributes,
not ``param_groups`` entries, so checkpoints are those of the plain optimizer.
"""
import torch

__all__ = ["GradClipMixin", "SGDWithGradClip", "AdamWWithGradClip"]


class GradClipMixin:
    """Put before a ``torch.optim.Optimizer`` class: clips the total gradient norm of all its
    parameters to ``clip_max_norm`` (in the ``clip_norm_type`` norm) before each step."""

    def __init__(self, params, *args, clip_max_norm: float, clip_norm_type: float = 2.0, **kwargs):
        if not clip_max_norm > 0:
            raise ValueError(f"clip_max_norm must be positive, got {clip_max_norm}.")
        super().__init__(params, *args, **kwargs)
        self.clip_max_norm = float(clip_max_norm)
        self.clip_norm_type = float(clip_norm_type)

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, self.clip_max_norm, self.clip_norm_type)
        return super().step(closure)


class SGDWithGradClip(GradClipMixin, torch.optim.SGD):
    """``torch.optim.SGD`` with gradient-norm clipping (``clip_max_norm``, ``clip_norm_type``)."""


class AdamWWithGradClip(GradClipMixin, torch.optim.AdamW):
    """``torch.optim.AdamW`` with gradient-norm clipping (``clip_max_norm``, ``clip_norm_type``)."""
