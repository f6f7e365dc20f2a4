"""ImageNet ResNet/ResNeXt weights in torchvision's layout (torchvision, mmcv's
``open-mmlab://resnext101_32x4d`` / ``_64x4d``, timm's ``resnet*``/``resnext*``) -> a detectron2
checkpoint for :func:`~ddod.modeling.make_resnet_stages` backbones.

detectron2's model zoo has ImageNet R-50, R-101 (MSRA) and X-101-32x8d (FAIR) only; the papers'
X-101-32x4d and X-101-64x4d come from torchvision-layout files. Names map as::

    conv1, bn1                      -> stem.conv1, stem.conv1.norm
    layer{i}.{j}.conv{k}, .bn{k}    -> res{i+1}.{j}.conv{k}, .conv{k}.norm
    layer{i}.{j}.downsample.0 / .1  -> res{i+1}.{j}.shortcut / .shortcut.norm
    layer{i}.{j}.conv2.conv_offset  -> res{i+1}.{j}.conv2_offset  (mmcv DCN: same 27-channel
                                       layout as detectron2's, see deform_resnet.py)
    fc.*, num_batches_tracked       -> dropped

These networks take RGB images; ``to_bgr=True`` reverses the input channels of the stem conv so
that the backbone reads detectron2's BGR images (with BGR mean/std, as configs/common/models/
backbones.py sets for every PyTorch-style backbone). They put the stride in the 3x3 conv
(``stride_in_1x1=False``).

    python tools/convert_torchvision_resnet.py resnext101_64x4d.pth \\
        pretrained/resnext101_64x4d_d2.pkl
"""
import pickle
import re
from typing import Dict

import torch

__all__ = ["torchvision_to_detectron2", "save_detectron2_pkl"]

_RULES = [
    (r"^conv1\.weight$", "stem.conv1.weight"),
    (r"^bn1\.(\w+)$", r"stem.conv1.norm.\1"),
    (r"^layer(\d)\.(\d+)\.conv2\.conv_offset\.(\w+)$", r"res{}.\2.conv2_offset.\3"),
    (r"^layer(\d)\.(\d+)\.conv(\d)\.(\w+)$", r"res{}.\2.conv\3.\4"),
    (r"^layer(\d)\.(\d+)\.bn(\d)\.(\w+)$", r"res{}.\2.conv\3.norm.\4"),
    (r"^layer(\d)\.(\d+)\.downsample\.0\.(\w+)$", r"res{}.\2.shortcut.\3"),
    (r"^layer(\d)\.(\d+)\.downsample\.1\.(\w+)$", r"res{}.\2.shortcut.norm.\3"),
]


def _rename(key: str) -> str:
    for pattern, target in _RULES:
        m = re.match(pattern, key)
        if m:
            stage = int(m.group(1)) + 1 if key.startswith("layer") else None
            return m.expand(target.format(stage))
    raise KeyError(f"no detectron2 name for {key!r}")


def torchvision_to_detectron2(
    state_dict: Dict[str, torch.Tensor], *, to_bgr: bool = True, prefix: str = ""
) -> Dict[str, torch.Tensor]:
    """Rename a torchvision-layout ResNet state dict to detectron2's ResNet names (with
    ``prefix`` prepended, e.g. "backbone.bottom_up."); "state_dict"/"model" wrappers and a
    "backbone." / "module." prefix on every key are removed first."""
    for wrapper in ("state_dict", "model"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
    for strip in ("module.", "backbone."):
        if state_dict and all(k.startswith(strip) for k in state_dict):
            state_dict = {k[len(strip) :]: v for k, v in state_dict.items()}
    out = {}
    for key, value in state_dict.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        if key == "conv1.weight" and to_bgr:
            value = value.flip(1)  # RGB input channels -> BGR
        out[prefix + _rename(key)] = value
    return out


def save_detectron2_pkl(weights: Dict[str, torch.Tensor], path: str, author: str) -> None:
    """Write ``weights`` as a detectron2 model-zoo style .pkl (numpy arrays, exact names: no
    name-matching heuristics are needed when loading)."""
    model = {k: v.detach().cpu().numpy() for k, v in weights.items()}
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": author}, f)
