"""WIDER FACE (Yang et al., CVPR 2016) from its official release layout.

Expected layout under a root (default ``$DETECTRON2_DATASETS/widerface``)::

    WIDER_train/images/<event>/<name>.jpg          e.g. 0--Parade/0_Parade_marchingband_1_849.jpg
    WIDER_val/images/<event>/<name>.jpg
    wider_face_split/wider_face_train_bbx_gt.txt
    wider_face_split/wider_face_val_bbx_gt.txt
    eval_tools/ground_truth/wider_face_val.mat      the evaluation kit's ground truth (val only):
    eval_tools/ground_truth/wider_{easy,medium,hard}_val.mat

The ``*_bbx_gt.txt`` files repeat, per image: its path relative to ``images/``, the number of
faces n, then n lines ``x1 y1 w h blur expression illumination invalid occlusion pose`` (an image
with no face has n = 0 and one line of zeros). :func:`load_widerface` turns them into
detectron2's dataset dicts with one class, "face", and keeps the six attributes on every
annotation. Faces marked invalid and faces under ``min_size`` pixels (either side) are kept but
flagged ``iscrowd=1``: detectron2's ``DatasetMapper`` leaves crowd boxes out of training, and
images left with crowd boxes only are dropped by ``filter_empty``. The evaluation does not use
these flags: it reads the kit's ``.mat`` files (``ddod.evaluation.WiderFaceEvaluator``).

Importing ``ddod.data`` registers ``widerface_train`` and ``widerface_val``; nothing is read
until a dataset is loaded, and then a missing file raises ``FileNotFoundError`` naming it.
"""
import logging
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

__all__ = [
    "WIDERFACE_ATTRIBUTES",
    "WIDERFACE_SUBSETS",
    "default_widerface_root",
    "widerface_paths",
    "parse_widerface_bbx_gt",
    "load_widerface",
    "register_widerface",
    "register_all_widerface",
]

logger = logging.getLogger(__name__)

# the per-face attribute columns after x1 y1 w h, in file order
WIDERFACE_ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
# the evaluation kit's difficulty subsets
WIDERFACE_SUBSETS = ("easy", "medium", "hard")
_SPLITS = ("train", "val")


def default_widerface_root() -> str:
    """``$DETECTRON2_DATASETS/widerface`` (``./datasets/widerface`` when the variable is unset),
    like detectron2's built-in datasets."""
    return os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "widerface")


def widerface_paths(root: str, split: str) -> Dict[str, str]:
    """The files of one split under ``root``: ``image_root``, ``gt_txt`` and, for "val",
    ``gt_mat_dir`` (the directory of the kit's ``.mat`` files)."""
    if split not in _SPLITS:
        raise ValueError(f"WIDER FACE split must be one of {_SPLITS}, got {split!r}.")
    paths = {
        "image_root": os.path.join(root, f"WIDER_{split}", "images"),
        "gt_txt": os.path.join(root, "wider_face_split", f"wider_face_{split}_bbx_gt.txt"),
    }
    if split == "val":
        paths["gt_mat_dir"] = os.path.join(root, "eval_tools", "ground_truth")
    return paths


def parse_widerface_bbx_gt(gt_txt: str) -> List[Tuple[str, np.ndarray]]:
    """Read a ``wider_face_*_bbx_gt.txt`` file.

    Returns:
        [(relative image path, (n, 10) float64 array of x1 y1 w h and the six attributes)], in
        file order; an image without faces gets a (0, 10) array.

    Raises:
        FileNotFoundError: ``gt_txt`` does not exist.
        ValueError: a malformed entry, naming the file and line number.
    """
    if not os.path.isfile(gt_txt):
        raise FileNotFoundError(
            f"WIDER FACE annotation file '{gt_txt}' does not exist (it is in the official "
            "wider_face_split.zip)."
        )
    with open(gt_txt) as f:
        lines = [line.strip() for line in f]
    entries = []
    i = 0

    def fail(what):
        raise ValueError(f"{gt_txt}, line {i + 1}: {what}")

    while i < len(lines):
        if not lines[i]:  # trailing blank lines
            i += 1
            continue
        name = lines[i]
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            fail(f"expected an image path, got {name!r}")
        i += 1
        try:
            count = int(lines[i])
        except (IndexError, ValueError):
            fail(f"expected the number of faces of {name}")
        i += 1
        # n = 0 is followed by one placeholder line of zeros
        rows = lines[i : i + max(count, 1)]
        i += max(count, 1)
        try:
            values = [[float(v) for v in row.split()[:10]] for row in rows]
        except ValueError:
            fail(f"non-numeric face line in the entry of {name}")
        if len(values) != max(count, 1) or any(len(v) != 10 for v in values):
            fail(f"the entry of {name} needs {max(count, 1)} lines of 10 numbers")
        boxes = np.asarray(values, dtype=np.float64).reshape(-1, 10)
        entries.append((name, boxes if count > 0 else boxes[:0]))
    return entries


def _image_size(path: str) -> Tuple[int, int]:
    """(height, width) from the image header only."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"WIDER FACE image '{path}' does not exist.")
    with Image.open(path) as image:
        width, height = image.size
    return height, width


def load_widerface(
    gt_txt: str, image_root: str, *, min_size: float = 2.0, check_images: bool = True
) -> List[Dict]:
    """WIDER FACE annotations as detectron2 dataset dicts.

    Args:
        gt_txt: a ``wider_face_{train,val}_bbx_gt.txt`` file.
        image_root: the ``WIDER_{train,val}/images`` directory its paths are relative to.
        min_size: faces narrower or shorter than this (pixels) are flagged ``iscrowd=1``, as
            invalid faces are (see the module docstring).
        check_images: read every image's header for its size (and so fail early on a missing
            image); False leaves ``height``/``width`` out (the mapper reads them).

    Returns:
        one dict per image: ``file_name``, ``image_id`` ("<event>/<name>" without extension,
        the key of the evaluation kit), ``height``, ``width``, ``annotations``: ``bbox`` (XYWH
        absolute), ``bbox_mode``, ``category_id`` 0, ``iscrowd``, and the six attributes
        (:data:`WIDERFACE_ATTRIBUTES`) as ints.
    """
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"WIDER FACE image directory '{image_root}' does not exist.")
    dicts = []
    ignored = 0
    for name, faces in parse_widerface_bbx_gt(gt_txt):
        record = {
            "file_name": os.path.join(image_root, name),
            "image_id": os.path.splitext(name)[0],
        }
        if check_images:
            record["height"], record["width"] = _image_size(record["file_name"])
        annotations = []
        for face in faces:
            x, y, w, h = (float(v) for v in face[:4])
            attributes = {k: int(v) for k, v in zip(WIDERFACE_ATTRIBUTES, face[4:])}
            crowd = attributes["invalid"] == 1 or w < min_size or h < min_size
            ignored += crowd
            annotations.append(
                dict(
                    bbox=[x, y, w, h],
                    bbox_mode=BoxMode.XYWH_ABS,
                    category_id=0,
                    iscrowd=int(crowd),
                    **attributes,
                )
            )
        record["annotations"] = annotations
        dicts.append(record)
    total = sum(len(d["annotations"]) for d in dicts)
    logger.info(
        f"Loaded {len(dicts)} images and {total} faces from {gt_txt}; {ignored} faces are invalid "
        f"or under {min_size} px and flagged iscrowd (not trained on)."
    )
    return dicts


def register_widerface(name: str, root: str, split: str, *, min_size: float = 2.0):
    """Register one WIDER FACE split found under ``root`` (the layout of the module docstring).

    The metadata carries ``thing_classes=["face"]``, ``image_root``, ``gt_txt``, ``split``,
    ``evaluator_type="widerface"`` and, for "val", ``gt_mat_dir`` for the evaluator. Registering
    a name again with the same arguments does nothing.
    """
    root = os.fspath(root)
    paths = widerface_paths(root, split)
    if name in DatasetCatalog.list():
        metadata = MetadataCatalog.get(name)
        if getattr(metadata, "gt_txt", None) == paths["gt_txt"]:
            return
        raise ValueError(
            f"Dataset '{name}' is already registered (gt_txt="
            f"{getattr(metadata, 'gt_txt', None)!r}); cannot re-register it for "
            f"{paths['gt_txt']!r}."
        )
    DatasetCatalog.register(
        name,
        lambda: load_widerface(paths["gt_txt"], paths["image_root"], min_size=min_size),
    )
    hint = (
        f"WIDER FACE '{split}' is registered under '{root}' ($DETECTRON2_DATASETS/widerface when "
        "ddod was imported, or register_widerface(name, root, split)); expected there: "
        f"WIDER_{split}/images/<event>/*.jpg and wider_face_split/wider_face_{split}_bbx_gt.txt"
        + (", and eval_tools/ground_truth/*.mat for evaluation." if split == "val" else ".")
    )
    MetadataCatalog.get(name).set(
        thing_classes=["face"],
        evaluator_type="widerface",
        split=split,
        missing_files_hint=hint,
        **paths,
    )


def register_all_widerface(root: Optional[str] = None):
    """Register ``widerface_train`` and ``widerface_val`` under ``root`` (default
    :func:`default_widerface_root`, read when ``ddod.data`` is imported)."""
    root = root if root is not None else default_widerface_root()
    for split in _SPLITS:
        register_widerface(f"widerface_{split}", root, split)
