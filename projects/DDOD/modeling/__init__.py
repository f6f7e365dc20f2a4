"""Model parts. Where things are:

* ``meta_arch/ddod.py``       the DDOD meta-architecture (training and inference flow)
* ``heads/ddod_head.py``      the two-tower head with deformable first convs and the IoU branch
* ``assigners/atss.py``       ATSS and DDOD's cost-based ATSS assignment
* ``losses/``                 loss terms and DDOD's FPN level re-weighting
* ``anchors.py``              padding-anchor mask; ``backbone.py`` P6/P7 block and small ResNets
"""
from .assigners import ATSSAssigner, CostATSSAssigner, DenseAssigner
from .backbone import LastLevelP6P7FromP5, build_ddod_resnet_fpn_backbone, make_resnet_stages
from .heads import DENSE_HEAD_REGISTRY, DDODHead, build_dense_head
from .losses import LevelReweighting
from .meta_arch import DDOD

__all__ = [
    "DDOD",
    "DDODHead",
    "DENSE_HEAD_REGISTRY",
    "build_dense_head",
    "DenseAssigner",
    "ATSSAssigner",
    "CostATSSAssigner",
    "LevelReweighting",
    "LastLevelP6P7FromP5",
    "make_resnet_stages",
    "build_ddod_resnet_fpn_backbone",
]
