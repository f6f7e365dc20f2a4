"""Label assignment. Every assigner has the interface of :class:`DenseAssigner` (base.py):

* ``ATSSAssigner`` / ``CostATSSAssigner`` (atss.py): ATSS and DDOD's cost-based ATSS;
* ``MaxIoUAssigner`` (max_iou.py): RetinaNet's IoU thresholds;
* ``FCOSPointAssigner`` (fcos.py): FCOS*'s centre sampling and per-level size ranges;
* ``APSAssigner`` (aps.py): MOD's aligned points sampler (per-point losses, batched GMM in
  gmm.py); it has ``assign_batch``, which the detector uses to assign all images at once.

A detector runs one assigner for both branches, or one per branch (DDOD's label-assignment
disentanglement).
"""
from .aps import APSAssigner
from .atss import ATSSAssigner, CostATSSAssigner, aligned_box_iou
from .base import BACKGROUND, IGNORE, AssignResult, DenseAssigner
from .fcos import FCOSPointAssigner
from .max_iou import MaxIoUAssigner

__all__ = [
    "AssignResult",
    "DenseAssigner",
    "ATSSAssigner",
    "CostATSSAssigner",
    "MaxIoUAssigner",
    "FCOSPointAssigner",
    "APSAssigner",
    "aligned_box_iou",
    "BACKGROUND",
    "IGNORE",
]
