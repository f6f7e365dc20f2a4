"""Model parts. Where things are:

* ``meta_arch/ddod.py``       the dense-detector meta-architecture of every method (DDOD, its
                              bases, VFNet): training and inference flow
* ``heads/ddod_head.py``      the two-tower head with deformable first convs and the IoU branch
* ``heads/vfnet_head.py``     VarifocalNet's head: star-shaped deformable sampling, box refinement
* ``heads/gfl_head.py``       GFL's head: joint class-IoU score, box side distributions
* ``tscode/``                 TSCODE's SCE/DPE input encoders (a plug-in of every head) and the
                              FPN that also hands the head res2
* ``layers/star_offsets.py``  VarifocalNet's star offsets (the nine box points) and 0.1 gradient
* ``assigners/``              ATSS and DDOD's cost-based ATSS (atss.py), RetinaNet's IoU
                              thresholds (max_iou.py), FCOS*'s point rules (fcos.py)
* ``box_coders.py``           FCOS's l, t, r, b coder (XYWH deltas are detectron2's)
* ``losses/``                 classification losses (focal_loss.py, varifocal_loss.py), box
                              terms (box_losses.py) and DDOD's FPN level re-weighting
* ``necks/ssh.py``            SSH's context module as a neck between FPN and head (DDOD-Face)
* ``postprocess.py``          candidates -> detections: class-aware NMS, Soft-NMS, box voting
* ``test_time_augmentation.py``  multi-scale + flip inference around any of the detectors
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
from .heads import DENSE_HEAD_REGISTRY, DDODHead, GFLHead, VFNetHead, build_dense_head
from .losses import (
    DistributionFocalLoss,
    FocalLoss,
    LevelReweighting,
    QualityFocalLoss,
    VarifocalLoss,
)
from .meta_arch import DDOD
from .necks import SSHContextModule, SSHNeck
from .tscode import FPNWithBottomUp, TaskContextDecoupler
from .postprocess import BoxVoting, ClassAwareNMS, SoftNMS, build_postprocess
from .test_time_augmentation import DenseDetectorWithTTA

__all__ = [
    "DDOD",
    "DDODHead",
    "VFNetHead",
    "GFLHead",
    "QualityFocalLoss",
    "DistributionFocalLoss",
    "TaskContextDecoupler",
    "FPNWithBottomUp",
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
    "SSHContextModule",
    "SSHNeck",
    "ClassAwareNMS",
    "SoftNMS",
    "BoxVoting",
    "build_postprocess",
    "DenseDetectorWithTTA",
]
