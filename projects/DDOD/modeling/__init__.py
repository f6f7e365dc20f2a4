"""Model parts. Where things are:

* ``meta_arch/ddod.py``       the dense-detector meta-architecture of every method (DDOD, its
                              bases, VFNet): training and inference flow
* ``heads/ddod_head.py``      the two-tower head with deformable first convs and the IoU branch
* ``heads/vfnet_head.py``     VarifocalNet's head: star-shaped deformable sampling, box refinement
* ``layers/star_offsets.py``  VarifocalNet's star offsets (the nine box points) and 0.1 gradient
* ``assigners/``              ATSS and DDOD's cost-based ATSS (atss.py), RetinaNet's IoU
                              thresholds (max_iou.py), FCOS*'s point rules (fcos.py)
* ``box_coders.py``           FCOS's l, t, r, b coder (XYWH deltas are detectron2's)
* ``losses/``                 classification losses (focal_loss.py, varifocal_loss.py), box
                              terms (box_losses.py) and DDOD's FPN level re-weighting
* ``anchors.py``              padding-anchor mask; ``backbone.py`` P6/P7 block and ResNet/ResNeXt
                              stages of any width; ``deform_resnet.py`` deformable bottlenecks
                              (torchvision's op, detectron2's checkpoint names);
                              ``resnet_weights.py`` torchvision-layout ImageNet files -> ours
"""
from .assigners import (
    APSAssigner,
    ATSSAssigner,
    CostATSSAssigner,
    DenseAssigner,
    FCOSPointAssigner,
    MaxIoUAssigner,
)
from .backbone import (
    LastLevelP6P7FromP5,
    build_ddod_resnet_backbone,
    build_ddod_resnet_fpn_backbone,
    make_resnet_stages,
)
from .box_coders import Box2BoxTransformLTRB
from .deform_resnet import DeformBottleneckBlock, DeformConv
from .heads import DENSE_HEAD_REGISTRY, DDODHead, VFNetHead, build_dense_head
from .losses import FocalLoss, LevelReweighting, VarifocalLoss
from .meta_arch import DDOD

__all__ = [
    "DDOD",
    "DDODHead",
    "VFNetHead",
    "FocalLoss",
    "VarifocalLoss",
    "DENSE_HEAD_REGISTRY",
    "build_dense_head",
    "DenseAssigner",
    "APSAssigner",
    "ATSSAssigner",
    "CostATSSAssigner",
    "MaxIoUAssigner",
    "FCOSPointAssigner",
    "Box2BoxTransformLTRB",
    "LevelReweighting",
    "LastLevelP6P7FromP5",
    "make_resnet_stages",
    "build_ddod_resnet_backbone",
    "build_ddod_resnet_fpn_backbone",
    "DeformBottleneckBlock",
    "DeformConv",
]
