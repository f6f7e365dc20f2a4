"""TSCODE: task-specific context decoupling (Zhuang et al., 2023; shared/spec/related_methods.md
§2), as a plug-in of the dense heads. Where things are:

* ``encoders.py``  the two input encoders, each one module shared by all levels: SCE (coarse,
                   semantic input of classification) and DPE (detail-rich input of localization),
                   the top-level choice (the map above P7), and the 2x2 rearrangement + crop that
                   brings SCE's coarse predictions back to each level's grid
* ``neck.py``      ``FPNWithBottomUp``: an FPN that also hands the head res2 (DPE's P_{l-1} at
                   level 3), with a 1x1 projection only when res2 is not as wide as the FPN
"""
from .encoders import (
    DPE_INPUTS,
    SCE_DOWNSAMPLES,
    TOP_MODES,
    DetailPreservingEncoder,
    SemanticContextEncoder,
    TaskContextDecoupler,
    TopLevel,
    shuffle_to_grid,
)
from .neck import FPNWithBottomUp

__all__ = [
    "DPE_INPUTS",
    "SCE_DOWNSAMPLES",
    "TOP_MODES",
    "DetailPreservingEncoder",
    "SemanticContextEncoder",
    "TaskContextDecoupler",
    "TopLevel",
    "shuffle_to_grid",
    "FPNWithBottomUp",
]
