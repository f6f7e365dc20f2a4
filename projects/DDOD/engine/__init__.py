"""Training and checkpointing for LazyConfig projects (a LazyConfig ``DefaultTrainer``)."""

from .checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DetectionCheckpointer,
)
from .trainer import (
    ConfigOverrideError,
    CPUAutocastTrainer,
    Trainer,
    apply_overrides,
    check_losses_finite,
)

__all__ = [
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
