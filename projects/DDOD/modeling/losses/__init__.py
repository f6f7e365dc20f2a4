"""Loss terms and DDOD's FPN level re-weighting (level_reweighting.py)."""
from .dense_losses import (
    BOX_REG_LOSS_TYPES,
    centerness_target,
    focal_loss_per_anchor,
    giou_loss_per_box,
    positive_normalizer,
    quality_bce_per_box,
    smooth_l1_loss_per_box,
)
from .level_reweighting import (
    REWEIGHT_STRATEGIES,
    LevelReweighting,
    fixed_linear_factors,
    linear_reweight_factors,
    rank_linear_factors,
    sum_reweight_factors,
)

__all__ = [
    "focal_loss_per_anchor",
    "giou_loss_per_box",
    "smooth_l1_loss_per_box",
    "quality_bce_per_box",
    "centerness_target",
    "positive_normalizer",
    "BOX_REG_LOSS_TYPES",
    "LevelReweighting",
    "REWEIGHT_STRATEGIES",
    "linear_reweight_factors",
    "fixed_linear_factors",
    "rank_linear_factors",
    "sum_reweight_factors",
]
