"""Stronger backbones for any model config (DDOD, its bases, VFNet): R-101, ResNeXt-101 and
deformable (DCN) stages, with the ImageNet weights and pixel normalisation each was trained
with::

    from ..common.models.ddod import model
    from ..common.models.backbones import use_backbone

    train.init_checkpoint = use_backbone(model, "X-101-64x4d", dcn=True)

Only ``model.backbone.bottom_up`` (stages and stem norm) and the model's pixel mean/std change;
the FPN and the heads keep their input widths (res3..res5 are 512/1024/2048 for all of them).

"DCN" is the papers' backbone DCN (mmdet ``mdconv_c3-c5``, MOD's and detectron2's ``dconv_c3-c5``
with modulation): DCNv2 (offsets and a modulation mask, one offset group) in every block of res3,
res4 and res5, on torchvision's deformable conv with detectron2's checkpoint layout
(ddod/modeling/deform_resnet.py). Its offset convs start at zero (they are not in ImageNet
checkpoints); the modulation mask then starts at sigmoid(0) = 0.5, as in detectron2 and mmcv.
"""

# detectron2's MSRA weights (R-50, R-101): Caffe2 "caffe style", stride in the 1x1 conv, BGR
# input with the mean subtracted and no std division.
_MSRA = dict(stride_in_1x1=True, pixel_std=[1.0, 1.0, 1.0])
# ImageNet models trained in PyTorch (detectron2's FAIR X-101-32x8d, torchvision's and mmcv's
# ResNeXts): stride in the 3x3 conv, input divided by the std. Kept in BGR: detectron2's
# FAIR file is BGR already, and tools/convert_torchvision_resnet.py flips the stem of an RGB
# torchvision/mmcv file so that every backbone here reads the same BGR images.
_PYTORCH = dict(stride_in_1x1=False, pixel_std=[57.375, 57.120, 58.395])

# name -> (make_resnet_stages arguments, normalisation, ImageNet checkpoint)
BACKBONES = {
    "R-50": (dict(depth=50), _MSRA, "detectron2://ImageNetPretrained/MSRA/R-50.pkl"),
    "R-101": (dict(depth=101), _MSRA, "detectron2://ImageNetPretrained/MSRA/R-101.pkl"),
    "X-101-32x8d": (
        dict(depth=101, num_groups=32, width_per_group=8),
        _PYTORCH,
        "detectron2://ImageNetPretrained/FAIR/X-101-32x8d.pkl",
    ),
    # not in detectron2's model zoo: convert torchvision's resnext101_32x4d-equivalent or mmcv's
    # open-mmlab://resnext101_32x4d / _64x4d file with tools/convert_torchvision_resnet.py
    "X-101-32x4d": (
        dict(depth=101, num_groups=32, width_per_group=4),
        _PYTORCH,
        "./pretrained/resnext101_32x4d_d2.pkl",
    ),
    "X-101-64x4d": (
        dict(depth=101, num_groups=64, width_per_group=4),
        _PYTORCH,
        "./pretrained/resnext101_64x4d_d2.pkl",
    ),
}
# res2..res5: the papers' DCN backbones deform res3-res5
DCN_STAGES = [False, True, True, True]


def use_backbone(model, name, *, dcn=False, modulated=True):
    """Set ``model``'s ResNet to ``name`` (a key of BACKBONES), with DCNv2 (``modulated``) or
    DCNv1 in res3-res5 if ``dcn``; returns the ImageNet checkpoint to put in
    ``train.init_checkpoint``."""
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    stages_kwargs, norm, checkpoint = BACKBONES[name]
    stages = model.backbone.bottom_up.stages
    stages.depth = stages_kwargs["depth"]
    stages.num_groups = stages_kwargs.get("num_groups", 1)
    stages.width_per_group = stages_kwargs.get("width_per_group", 64)
    stages.stride_in_1x1 = norm["stride_in_1x1"]
    stages.deform_on_per_stage = list(DCN_STAGES) if dcn else [False] * 4
    stages.deform_modulated = bool(dcn and modulated)
    stages.deform_num_groups = 1
    model.pixel_std = list(norm["pixel_std"])
    return checkpoint
