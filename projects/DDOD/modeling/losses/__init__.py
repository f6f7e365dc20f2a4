"""Loss parts. Where things are:

* ``focal_loss.py``        ``FocalLoss``: the classification loss of every base (default)
* ``varifocal_loss.py``    ``VarifocalLoss``: VarifocalNet's IoU-aware classification loss,
                           usable on every base in place of focal loss
* ``gfl_losses.py``        GFL's quality focal loss (a classification loss) and distribution
                           focal loss (the box-distribution term)
* ``box_losses.py``        the box term with its weighting (none, centerness, IoU)
* ``dense_losses.py``      per-anchor primitives (focal, GIoU, DIoU, CIoU, L1, BCE, centerness, normaliser)
* ``level_reweighting.py`` DDOD's FPN level re-weighting
"""
from .dense_losses import (
    BOX_REG_LOSS_TYPES,
    centerness_target,
    ciou_loss_per_box,
    diou_loss_per_box,
    focal_loss_per_anchor,
    giou_loss_per_box,
    positive_normalizer,
    quality_bce_per_box,
    smooth_l1_loss_per_box,
)
from .box_losses import weighted_box_loss
from .focal_loss import FocalLoss
from .varifocal_loss import VarifocalLoss, varifocal_loss
from .gfl_losses import (
    DistributionFocalLoss,
    QualityFocalLoss,
    distribution_focal_loss,
    quality_focal_loss,
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
    "FocalLoss",
    "VarifocalLoss",
    "varifocal_loss",
    "QualityFocalLoss",
    "quality_focal_loss",
    "DistributionFocalLoss",
    "distribution_focal_loss",
    "weighted_box_loss",
    "focal_loss_per_anchor",
    "giou_loss_per_box",
    "diou_loss_per_box",
    "ciou_loss_per_box",
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
