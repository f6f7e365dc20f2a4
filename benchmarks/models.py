"""The detectors the benchmarks compare, built at one backbone, and their random inputs.

* ``DDOD``: ``configs/common/models/ddod.py`` as it is.
* ``VFNet``: ``configs/common/models/vfnet.py`` (VarifocalNet on the same framework): its own
  3 convs per tower (at most the preset's depth), star DCN, refinement, VFL, two GIoU terms.
* ``DDOD+VFL`` (not in the default table; ``--models ... DDOD+VFL``): DDOD with the varifocal
  loss in place of focal loss.
* ``GFL`` (not in the default table): ``configs/common/models/gfl.py`` (GFLHead, QFL, DFL).
* ``ATSS+TSCODE``, ``DDOD+TSCODE``, ``GFL+TSCODE`` (not in the default table): the host with
  TSCODE's SCE and DPE (``configs/common/models/tscode.py``: res2 from the FPN, the 2 x (2 x
  width) SCE tower).
* ``ATSS``: the same-framework ATSS baseline. ``configs/common/models/atss.py`` when that file
  exists; otherwise the DDOD config with its three disentanglements switched off
  (``reg_assigner=None``, ``cls_assigner=ATSSAssigner()``, no deformable convs,
  ``level_reweighting=None``).
* ``FCOS``: ``detectron2.modeling.meta_arch.fcos.FCOS`` from Detectron2's model-zoo config
  (``common/models/fcos.py``). v0.6's head builds ``get_norm("GN", 1)`` to probe the norm type,
  which raises on torch 2.x, so the head gets a callable norm that builds the same
  ``GroupNorm(32, C)`` for every real layer and ``GroupNorm(1, 1)`` for that probe.
* ``RetinaNet``: ``detectron2.modeling.meta_arch.retinanet.RetinaNet`` from Detectron2's model-zoo
  config (9 anchors per location, no norm in the head, as Detectron2 ships it).
* ``<file>.py`` (not in the default table; e.g. ``--models fcos.py retinanet.py``): any other
  ``configs/common/models/<file>.py`` that defines ``model`` (this project's FCOS* and RetinaNet,
  and every method added later), resized like DDOD where its config has the same keys.

All four share one ResNet (the DDOD config's bottom-up network: FrozenBN, stem and res2 frozen)
and an FPN of the same width on P3-P7, with random weights (see :func:`calm_random_resnet`). Each keeps its own P6/P7 block as its config defines it:
from P5 for DDOD, ATSS and FCOS, from C5 for RetinaNet. Heads have the same width and depth.
"""
import copy
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import nn

import ddod  # noqa: F401  (compat patches and registrations; must come before detectron2 parts)
from detectron2 import model_zoo
from detectron2.config import LazyCall, LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, Instances

from ddod.modeling import ATSSAssigner, VarifocalLoss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DDOD_CONFIG = os.path.join(ROOT, "configs", "common", "models", "ddod.py")
VFNET_CONFIG = os.path.join(ROOT, "configs", "common", "models", "vfnet.py")
ATSS_CONFIG = os.path.join(ROOT, "configs", "common", "models", "atss.py")
GFL_CONFIG = os.path.join(ROOT, "configs", "common", "models", "gfl.py")

MODEL_NAMES = ("DDOD", "ATSS", "VFNet", "FCOS", "RetinaNet")
# Not in the default table; ``--models ... DDOD-noDCN`` adds it to split DDOD's overhead into
# its deformable convs and the rest (assignment, level re-weighting); ``DDOD+VFL`` measures the
# varifocal loss's cost on DDOD.
EXTRA_MODEL_NAMES = (
    "DDOD-noDCN", "DDOD+VFL", "GFL", "ATSS+TSCODE", "DDOD+TSCODE", "GFL+TSCODE",
)
BASELINE = "ATSS"
MODELS_DIR = os.path.join(ROOT, "configs", "common", "models")
# model files the names above already stand for; other model files join as "<file>.py"
COVERED_MODEL_FILES = {"ddod.py": "DDOD", "atss.py": "ATSS", "vfnet.py": "VFNet"}


def project_model_files() -> Dict[str, str]:
    """{"<file>.py": path} of every ``configs/common/models/*.py`` that defines ``model``, except
    those in ``COVERED_MODEL_FILES`` (helper files such as backbones.py define no ``model``)."""
    found = {}
    for name in sorted(os.listdir(MODELS_DIR)):
        if not name.endswith(".py") or name.startswith("_") or name in COVERED_MODEL_FILES:
            continue
        path = os.path.join(MODELS_DIR, name)
        if "model" in LazyConfig.load(path):
            found[name] = path
    return found


@dataclass(frozen=True)
class BackboneSpec:
    """ResNet depth and width, FPN width, head convs per tower."""

    name: str
    depth: int
    base_channels: int
    fpn_channels: int
    head_convs: int

    @property
    def res5_channels(self) -> int:
        return self.base_channels * (4 if self.depth >= 50 else 1) * 8

    def describe(self) -> str:
        width = "" if self.base_channels == 64 else f" at width {self.base_channels}/64"
        return (
            f"ResNet-{self.depth}{width}-FPN (P3-P7, {self.fpn_channels} channels), "
            f"heads {self.head_convs} x {self.fpn_channels}-channel convs per tower"
        )


BACKBONES = {
    "R50": BackboneSpec("R50", 50, 64, 256, 4),
    "R18": BackboneSpec("R18", 18, 64, 256, 4),
    # only for smoke tests: every part present, nothing of realistic size
    "tiny": BackboneSpec("tiny", 18, 8, 32, 2),
}


def gn_norm(channels: int) -> nn.Module:
    """GroupNorm(32, C), as ``norm="GN"``, that also survives v0.6's ``get_norm(norm, 1)`` probe."""
    return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)


def _apply_backbone(model_cfg, spec: BackboneSpec):
    """Resize a DDOD-family LazyConfig model to ``spec``."""
    bottom_up = model_cfg.backbone.bottom_up
    bottom_up.stem.out_channels = spec.base_channels
    bottom_up.stages.depth = spec.depth
    bottom_up.stages.base_channels = spec.base_channels
    model_cfg.backbone.out_channels = spec.fpn_channels
    top_block = model_cfg.backbone.top_block
    # P6 from C5 (RetinaNet's in_feature="res5") or from P5
    from_c5 = top_block.get("in_feature", "p5") == "res5"
    top_block.in_channels = spec.res5_channels if from_c5 else spec.fpn_channels
    top_block.out_channels = spec.fpn_channels
    model_cfg.head.input_shape = [ShapeSpec(channels=spec.fpn_channels)] * 5
    # a head of another method (a "<file>.py" model) may lack these keys
    if "conv_dims" in model_cfg.head:
        model_cfg.head.conv_dims = spec.fpn_channels
    if "num_convs" in model_cfg.head:
        model_cfg.head.num_convs = spec.head_convs


def ddod_config(spec: BackboneSpec):
    cfg = LazyConfig.load(DDOD_CONFIG).model
    _apply_backbone(cfg, spec)
    return cfg


def vfnet_config(spec: BackboneSpec):
    cfg = LazyConfig.load(VFNET_CONFIG).model
    _apply_backbone(cfg, spec)
    cfg.head.num_convs = min(3, spec.head_convs)  # VFNet's towers have 3 convs, not 4
    return cfg


def gfl_config(spec: BackboneSpec):
    cfg = LazyConfig.load(GFL_CONFIG).model
    _apply_backbone(cfg, spec)
    return cfg


def with_tscode(cfg):
    """A copy of a DDOD-family model config with TSCODE's SCE and DPE."""
    import importlib.util

    path = os.path.join(ROOT, "configs", "common", "models", "tscode.py")
    spec = importlib.util.spec_from_file_location("ddod_config_tscode", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.use_tscode(copy.deepcopy(cfg))


def atss_config(spec: BackboneSpec) -> Tuple[object, str]:
    """The ATSS baseline config and a line saying where it came from."""
    if os.path.exists(ATSS_CONFIG):
        cfg = LazyConfig.load(ATSS_CONFIG).model
        _apply_backbone(cfg, spec)
        return cfg, "configs/common/models/atss.py"
    cfg = ddod_config(spec)
    cfg.reg_assigner = None
    cfg.cls_assigner = LazyCall(ATSSAssigner)()
    cfg.head.cls_deform_index = None
    cfg.head.reg_deform_index = None
    cfg.level_reweighting = None
    return cfg, (
        "configs/common/models/ddod.py with reg_assigner=None, cls_assigner=ATSSAssigner(), "
        "no deformable convs, level_reweighting=None"
    )


def _d2_config(name: str, ddod_cfg, spec: BackboneSpec):
    """A Detectron2 model-zoo dense detector on the DDOD config's ResNet."""
    cfg = model_zoo.get_config(f"common/models/{name}.py").model
    cfg.backbone.bottom_up = copy.deepcopy(ddod_cfg.backbone.bottom_up)
    cfg.backbone.out_channels = spec.fpn_channels
    cfg.head.input_shape = [ShapeSpec(channels=spec.fpn_channels)] * 5
    cfg.head.conv_dims = [spec.fpn_channels] * spec.head_convs
    cfg.num_classes = 80
    return cfg


def fcos_config(ddod_cfg, spec: BackboneSpec):
    cfg = _d2_config("fcos", ddod_cfg, spec)
    cfg.backbone.top_block.in_channels = spec.fpn_channels  # P6 from P5, as the zoo config
    cfg.head.norm = gn_norm  # norm="GN" crashes v0.6's head on torch 2.x (see module docstring)
    return cfg


def retinanet_config(ddod_cfg, spec: BackboneSpec):
    cfg = _d2_config("retinanet", ddod_cfg, spec)
    cfg.backbone.top_block.in_channels = spec.res5_channels  # P6 from C5, as the zoo config
    return cfg


def calm_random_resnet(model: nn.Module, factor: float = 0.1):
    """Scale the last norm of every residual branch by ``factor``.

    Without pretrained weights a 50-layer ResNet with FrozenBN (identity statistics) multiplies
    its activations at every residual sum (feature std ~2e3 at P3), and RetinaNet's norm-free
    head then gives inf/NaN losses. A trained ResNet's residual branches are small; this makes
    the random one behave alike (feature std ~10). No shape, op or FLOP changes.
    """
    from detectron2.modeling.backbone.resnet import BasicBlock, BottleneckBlock

    with torch.no_grad():
        for block in model.backbone.bottom_up.modules():
            if isinstance(block, BottleneckBlock):
                block.conv3.norm.weight.mul_(factor)
            elif isinstance(block, BasicBlock):
                block.conv2.norm.weight.mul_(factor)


def build_models(
    spec: BackboneSpec, device: torch.device, names=MODEL_NAMES, seed: int = 0
) -> Tuple[Dict[str, nn.Module], Dict[str, str]]:
    """Build the detectors. Returns ({name: model}, {name: how it was built})."""
    ddod_cfg = ddod_config(spec)
    atss_cfg, atss_source = atss_config(spec)
    no_dcn_cfg = copy.deepcopy(ddod_cfg)
    no_dcn_cfg.head.cls_deform_index = None
    no_dcn_cfg.head.reg_deform_index = None
    vfl_cfg = copy.deepcopy(ddod_cfg)
    vfl_cfg.cls_loss = LazyCall(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
    gfl_cfg = gfl_config(spec)
    tscode = "with TSCODE (configs/common/models/tscode.py: SCE and DPE)"
    configs = {
        "DDOD": (ddod_cfg, "configs/common/models/ddod.py"),
        "GFL": (gfl_cfg, "configs/common/models/gfl.py"),
        "ATSS+TSCODE": (with_tscode(atss_cfg), f"{atss_source} {tscode}"),
        "DDOD+TSCODE": (with_tscode(ddod_cfg), f"configs/common/models/ddod.py {tscode}"),
        "GFL+TSCODE": (with_tscode(gfl_cfg), f"configs/common/models/gfl.py {tscode}"),
        "DDOD-noDCN": (no_dcn_cfg, "configs/common/models/ddod.py without deformable convs"),
        "DDOD+VFL": (vfl_cfg, "configs/common/models/ddod.py with cls_loss=VarifocalLoss()"),
        "ATSS": (atss_cfg, atss_source),
        "VFNet": (
            vfnet_config(spec),
            "configs/common/models/vfnet.py (3 convs per tower, star DCN, refinement, VFL)",
        ),
        "FCOS": (
            fcos_config(ddod_cfg, spec),
            "detectron2 model zoo common/models/fcos.py (v0.6 FCOS), GN through a callable norm",
        ),
        "RetinaNet": (
            retinanet_config(ddod_cfg, spec),
            "detectron2 model zoo common/models/retinanet.py (v0.6 RetinaNet), 9 anchors/location",
        ),
    }
    for name, path in project_model_files().items():
        if name in names:
            cfg = LazyConfig.load(path).model
            _apply_backbone(cfg, spec)
            configs[name] = (cfg, f"configs/common/models/{name}")
    models, sources = {}, {}
    for name in names:
        torch.manual_seed(seed)
        cfg, source = configs[name]
        model = instantiate(cfg)
        calm_random_resnet(model)
        models[name] = model.to(device)
        sources[name] = source
    return models, sources


def set_classification_prior(model: nn.Module, prob: float):
    """Set every classification output to the probability ``prob`` (through the bias)."""
    score = getattr(model.head, "cls_score", None)
    if getattr(score, "bias", None) is None:
        return  # a head without a cls_score bias keeps its initial prior
    with torch.no_grad():
        score.bias.fill_(math.log(prob / (1 - prob)))


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def random_gt_boxes(
    num: int, height: int, width: int, generator: torch.Generator, min_size: float = 8.0
) -> torch.Tensor:
    """(num, 4) XYXY boxes inside the image, side lengths log-uniform from ``min_size`` to 60% of
    the image side, aspect ratios from 1:3 to 3:1."""
    max_size = 0.6 * min(height, width)
    lo, hi = math.log(min_size), math.log(max(max_size, min_size * 1.01))
    scale = torch.exp(torch.empty(num).uniform_(lo, hi, generator=generator))
    ratio = torch.exp(torch.empty(num).uniform_(math.log(1 / 3), math.log(3), generator=generator))
    w = (scale * ratio.sqrt()).clamp(min=2.0, max=width - 1.0)
    h = (scale / ratio.sqrt()).clamp(min=2.0, max=height - 1.0)
    x0 = torch.rand(num, generator=generator) * (width - w)
    y0 = torch.rand(num, generator=generator) * (height - h)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def make_batch(
    batch_size: int,
    height: int,
    width: int,
    num_gt: int,
    device: torch.device,
    *,
    num_classes: int = 80,
    seed: int = 0,
    with_instances: bool = True,
) -> List[dict]:
    """Detectron2 input dicts: random uint8 images already on ``device`` (no data loading is
    measured) and ``num_gt`` random GT boxes with random classes per image."""
    g = torch.Generator().manual_seed(seed)
    batch = []
    for _ in range(batch_size):
        image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
        item = {"image": image.to(device), "height": height, "width": width}
        if with_instances:
            inst = Instances((height, width))
            inst.gt_boxes = Boxes(random_gt_boxes(num_gt, height, width, g).to(device))
            inst.gt_classes = torch.randint(0, num_classes, (num_gt,), generator=g).to(device)
            item["instances"] = inst
        batch.append(item)
    return batch


def batch_tensors(batch: List[dict]) -> List[torch.Tensor]:
    out = []
    for item in batch:
        out.append(item["image"])
        if "instances" in item:
            out.extend([item["instances"].gt_boxes.tensor, item["instances"].gt_classes])
    return out
