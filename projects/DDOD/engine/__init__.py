"""Training and checkpointing for LazyConfig projects (a LazyConfig ``DefaultTrainer``)."""

from .checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DetectionCheckpointer,
)
from .grad_clip import AdamWWithGradClip, GradClipMixin, SGDWithGradClip
from .trainer import (
    ConfigOverrideError,
    CPUAutocastTrainer,
    Trainer,
    apply_overrides,
    check_losses_finite,
)

__all__ = [
    "AdamWWithGradClip",
    "GradClipMixin",
    "SGDWithGradClip",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "ConfigOverrideError",
    "CPUAutocastTrainer",
    "DetectionCheckpointer",
    "Trainer",
    "apply_overrides",
    "check_losses_finite",
]
