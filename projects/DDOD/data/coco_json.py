"""The user's own COCO-format data from the command line, and class checks between model and data.

``train_net.py --train-json A.json --train-images DIR_A --test-json B.json --test-images DIR_B``
calls :func:`use_coco_json`, which

* records the two datasets under the config's top-level ``coco_json_datasets`` key
  (``{name: {"json_file": ..., "image_root": ...}}``), so the ``config.yaml`` that a run saves is
  enough to register them again later (``--eval-only``, the demo, the tools all call
  :func:`register_config_datasets`);
* points ``dataloader.train`` / ``dataloader.test`` (and the evaluator) at them;
* sets ``model.num_classes`` to the number of categories in the training json; the class names
  come from the json too (``thing_classes``, in category-id order as detectron2's loader uses).

:func:`check_dataset_classes` is the guard against evaluating a model on other data: the model's
number of classes, the training set's classes and the test set's classes must agree, checked
before training starts (not after hours of it) and before every evaluation.
"""
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

from omegaconf import DictConfig, OmegaConf

from detectron2.data import DatasetCatalog, MetadataCatalog

from .datasets import register_coco_dataset

__all__ = [
    "CONFIG_KEY",
    "DatasetClassMismatchError",
    "check_dataset_classes",
    "dataset_classes",
    "read_coco_categories",
    "register_config_datasets",
    "use_coco_json",
]

logger = logging.getLogger(__name__)

# Top-level config key holding the COCO-json datasets a config needs registered.
CONFIG_KEY = "coco_json_datasets"


class DatasetClassMismatchError(ValueError):
    """The model's classes and a dataset's classes (or two datasets' classes) differ."""


def read_coco_categories(json_file: str) -> List[str]:
    """Category names of a COCO instances json, in increasing category id (detectron2's
    ``load_coco_json`` maps ids to contiguous class indices in that order).

    Raises:
        FileNotFoundError: no such file. ValueError: not a COCO json, or no categories.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO annotation file '{json_file}' does not exist.")
    try:
        with open(json_file) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"Cannot read COCO annotation file '{json_file}': {e}") from e
    categories = data.get("categories") if isinstance(data, dict) else None
    if not categories:
        raise ValueError(
            f"COCO annotation file '{json_file}' has no 'categories' list; a detection json needs "
            "one entry {'id': ..., 'name': ...} per class."
        )
    try:
        return [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"COCO annotation file '{json_file}': every category needs an 'id' and a 'name' ({e})."
        ) from e


def _register(name: str, json_file: str, image_root: str) -> None:
    if name in DatasetCatalog.list():
        metadata = MetadataCatalog.get(name)
        same_files = (getattr(metadata, "json_file", None), getattr(metadata, "image_root", None))
        if same_files == (json_file, image_root):
            # Registered already (the Trainer registers before every evaluation): do not parse
            # the json again for its categories; a COCO-size json takes seconds.
            return
    classes = read_coco_categories(json_file)
    register_coco_dataset(name, json_file, image_root, metadata={"thing_classes": classes})


def register_config_datasets(cfg) -> List[str]:
    """Register every dataset of ``cfg.coco_json_datasets`` (if the key exists). Idempotent.

    Returns:
        the names registered.
    """
    entries = OmegaConf.select(cfg, CONFIG_KEY, default=None) if isinstance(cfg, DictConfig) else None
    if not entries:
        return []
    for name, entry in entries.items():
        for key in ("json_file", "image_root"):
            if key not in entry:
                raise KeyError(f"Config key '{CONFIG_KEY}.{name}' has no '{key}'.")
        _register(str(name), str(entry["json_file"]), str(entry["image_root"]))
    return [str(n) for n in entries]


def use_coco_json(
    cfg,
    *,
    train: Optional[Tuple[str, str]] = None,
    test: Optional[Tuple[str, str]] = None,
    name: str = "custom",
):
    """Point ``cfg`` at COCO-json datasets given as ``(json_file, image_root)``; see the module
    docstring. Paths are made absolute, so the saved config works from any directory.

    Args:
        cfg: a LazyConfig with ``dataloader.train`` / ``dataloader.test`` and ``model.num_classes``.
        train, test: ``(json_file, image_root)`` or None to keep the config's dataset.
        name: dataset names become ``{name}_train`` and ``{name}_test``.

    Returns:
        cfg, modified in place.
    """
    for split, pair in (("train", train), ("test", test)):
        if pair is None:
            continue
        json_file, image_root = (os.path.abspath(os.fspath(p)) for p in pair)
        if not os.path.isdir(image_root):
            raise FileNotFoundError(f"Image directory '{image_root}' of the {split} set does not exist.")
        dataset_name = f"{name}_{split}"
        _register(dataset_name, json_file, image_root)
        if OmegaConf.select(cfg, CONFIG_KEY, default=None) is None:
            cfg[CONFIG_KEY] = {}
        cfg[CONFIG_KEY][dataset_name] = {"json_file": json_file, "image_root": image_root}
        if OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None) is None:
            raise KeyError(f"The config has no 'dataloader.{split}.dataset.names' to set.")
        cfg.dataloader[split].dataset.names = dataset_name
        if split == "test" and OmegaConf.select(cfg, "dataloader.evaluator.dataset_name", default=None):
            cfg.dataloader.evaluator.dataset_name = dataset_name
        if split == "train" and "num_classes" in cfg.model:
            num_classes = len(MetadataCatalog.get(dataset_name).thing_classes)
            if cfg.model.num_classes != num_classes:
                logger.info(f"model.num_classes={num_classes} from '{json_file}'.")
            cfg.model.num_classes = num_classes
    return cfg


def dataset_classes(names: Union[str, Sequence[str]]) -> Optional[List[str]]:
    """The class names of registered datasets, from their metadata or their COCO json, without
    loading the images or annotations; None when they cannot be known cheaply (a dataset with a
    custom loader and no ``thing_classes``, or a json that is not there)."""
    if isinstance(names, str):
        names = [names]
    result = None
    for name in names:
        if name not in DatasetCatalog.list():
            return None  # reported with close matches when the loader is built
        metadata = MetadataCatalog.get(name)
        classes = getattr(metadata, "thing_classes", None)
        json_file = getattr(metadata, "json_file", None)
        if classes is None and json_file and os.path.isfile(json_file):
            try:
                classes = read_coco_categories(json_file)
            except ValueError:
                return None
        if classes is None:
            return None
        if result is not None and list(classes) != result:
            raise DatasetClassMismatchError(
                f"The datasets {list(names)} have different classes; detectron2 cannot "
                "concatenate them."
            )
        result = list(classes)
    return result


def _names(cfg, split: str):
    return OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None)


def _short(classes: List[str]) -> str:
    text = ", ".join(map(str, classes[:8]))
    return f"[{text}{', ...' if len(classes) > 8 else ''}] ({len(classes)} classes)"


def check_dataset_classes(cfg, splits: Sequence[str] = ("train", "test")) -> Dict[str, List[str]]:
    """Check that ``model.num_classes`` and the classes of the datasets of ``splits`` agree.

    Raises:
        DatasetClassMismatchError: naming the config keys and the datasets, e.g. a model
            trained on a 3-class json evaluated on the 10 digits classes.

    Returns:
        {split: class names} for the splits whose classes could be read.
    """
    classes = {}
    for split in splits:
        names = _names(cfg, split)
        if names is None:
            continue
        found = dataset_classes(OmegaConf.to_object(names) if not isinstance(names, str) else names)
        if found is not None:
            classes[split] = found
    num_classes = OmegaConf.select(cfg, "model.num_classes", default=None)
    for split, found in classes.items():
        if isinstance(num_classes, int) and len(found) != num_classes:
            raise DatasetClassMismatchError(
                f"model.num_classes={num_classes}, but the {split} set "
                f"dataloader.{split}.dataset.names={_names(cfg, split)!r} has {_short(found)}. "
                "Set model.num_classes to match, or use --train-json/--test-json (which set it "
                "from the json)."
            )
    if "train" in classes and "test" in classes and classes["train"] != classes["test"]:
        raise DatasetClassMismatchError(
            f"The training set {_names(cfg, 'train')!r} has {_short(classes['train'])} but the "
            f"test set {_names(cfg, 'test')!r} has {_short(classes['test'])}: evaluation would "
            "score the model on other classes. Set dataloader.test.dataset.names to a dataset "
            "with the training classes (train_net.py --test-json/--test-images), or give both "
            "sets the same 'categories' in the same id order."
        )
    return classes
