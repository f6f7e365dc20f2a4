"""Loss terms and DDOD's FPN level re-weighting (level_reweighting.py)."""
from .dense_losses import (
    focal_loss_per_anchor,
    giou_loss_per_box,
    positive_normalizer,
    quality_bce_per_box,
)
from .level_reweighting import LevelReweighting, linear_reweight_factors

__all__ = [
    "focal_loss_per_anchor",
    "giou_loss_per_box",
    "quality_bce_per_box",
    "positive_normalizer",
    "LevelReweighting",
    "linear_reweight_factors",
]
