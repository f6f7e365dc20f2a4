"""Training and checkpointing for LazyConfig projects (a LazyConfig ``DefaultTrainer``)."""

from .checkpoint import CheckpointError, CheckpointNotFoundError, DetectionCheckpointer
from .trainer import ConfigOverrideError, CPUAutocastTrainer, Trainer, apply_overrides

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConfigOverrideError",
    "CPUAutocastTrainer",
    "DetectionCheckpointer",
    "Trainer",
    "apply_overrides",
]
