"""Label assignment. DDOD's cost-based assignment is :class:`CostATSSAssigner` (atss.py)."""
from .atss import ATSSAssigner, CostATSSAssigner, aligned_box_iou
from .base import BACKGROUND, IGNORE, AssignResult, DenseAssigner

__all__ = [
    "AssignResult",
    "DenseAssigner",
    "ATSSAssigner",
    "CostATSSAssigner",
    "aligned_box_iou",
    "BACKGROUND",
    "IGNORE",
]
