"""Registering COCO-format datasets and loading them with early, readable errors.

detectron2 registers its built-in datasets (``coco_2017_train``, ...) at hard-coded paths under
``$DETECTRON2_DATASETS`` and reads the files only when a dataset is first loaded, deep inside a
data loader build. :func:`get_detection_dataset_dicts_checked` checks the paths first and says what
is missing and where it should be; the LazyConfig data configs of this project use it in place of
detectron2's ``get_detection_dataset_dicts``.
"""

import difflib
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.data.datasets import register_coco_instances

from .digits import ensure_digits_dataset, is_digits_dataset

__all__ = [
    "UnknownDatasetError",
    "register_coco_dataset",
    "check_dataset_files",
    "get_detection_dataset_dicts_checked",
]

_MISSING = object()


class UnknownDatasetError(KeyError):
    """A dataset name that is not in ``DatasetCatalog``."""

    def __str__(self):
        # KeyError's default __str__ shows the repr of the message (quotes, escaped newlines).
        return str(self.args[0]) if self.args else ""


def register_coco_dataset(
    name: str, json_file: str, image_root: str, metadata: Optional[Dict] = None
):
    """Register a COCO-format detection dataset (detectron2's ``register_coco_instances``).

    Registering a name again with the same arguments does nothing, so modules and scripts can call
    this unconditionally; registering it with different arguments raises ``ValueError`` instead
    of detectron2's bare ``AssertionError``.

    Args:
        name: the dataset name, e.g. "my_dataset_train".
        json_file: path of the COCO instances json.
        image_root: directory that the json's ``file_name`` entries are relative to.
        metadata: extra metadata, e.g. ``{"thing_classes": [...]}``.
    """
    metadata = dict(metadata or {})
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    if name not in DatasetCatalog.list():
        register_coco_instances(name, metadata, json_file, image_root)
        return

    requested = dict(json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata)
    existing = MetadataCatalog.get(name)
    conflicts = {
        key: getattr(existing, key, _MISSING)
        for key, value in requested.items()
        if getattr(existing, key, _MISSING) != value
    }
    if conflicts:
        lines = [
            f"  {key}: registered {'(unset)' if old is _MISSING else repr(old)}, "
            f"requested {requested[key]!r}"
            for key, old in conflicts.items()
        ]
        raise ValueError(
            f"Dataset '{name}' is already registered with different arguments:\n"
            + "\n".join(lines)
            + "\nUse another name, or call DatasetCatalog.remove(name) and "
            "MetadataCatalog.remove(name) first."
        )


def _builtin_layouts() -> Dict[str, Tuple[str, str]]:
    """detectron2's built-in COCO and LVIS names -> (image dir, json file), relative to its root."""
    try:
        from detectron2.data.datasets import builtin
    except ImportError:
        return {}
    layouts = {}
    # Both tables are {group: {name: (image_root, json_file)}} in v0.6 and later.
    for table in ("_PREDEFINED_SPLITS_COCO", "_PREDEFINED_SPLITS_LVIS"):
        for splits in getattr(builtin, table, {}).values():
            layouts.update(splits)
    return layouts


def _builtin_root() -> Optional[str]:
    try:
        from detectron2.data.datasets import builtin
    except ImportError:
        return None
    return getattr(builtin, "_root", None)


def _builtin_hint(name: str) -> str:
    """Explain where detectron2's built-in dataset ``name`` is looked for."""
    env = os.environ.get("DETECTRON2_DATASETS")
    root = _builtin_root() or "datasets"
    where = (
        f"$DETECTRON2_DATASETS (set to '{env}')"
        if env
        else f"$DETECTRON2_DATASETS (not set, so './datasets' in the working directory "
        f"'{os.getcwd()}')"
    )
    hint = (
        f"'{name}' is one of detectron2's built-in datasets: its files resolve under {where}; "
        f"the registered root is '{root}', read when detectron2.data was first imported."
    )
    image_dir, json_rel = _builtin_layouts()[name]
    tops = " and ".join(sorted({f"'{p.split('/')[0]}/'" for p in (json_rel, image_dir)}))
    return hint + (
        "\nExpected layout:\n"
        f"  $DETECTRON2_DATASETS/{json_rel}\n"
        f"  $DETECTRON2_DATASETS/{image_dir.rstrip('/')}/   (the images)\n"
        f"Download the dataset (COCO: https://cocodataset.org), or set DETECTRON2_DATASETS to "
        f"the directory that contains {tops} before starting Python."
    )


def _unknown_dataset_error(name: str) -> UnknownDatasetError:
    registered = DatasetCatalog.list()
    close = difflib.get_close_matches(name, registered, n=5, cutoff=0.6)
    message = f"Dataset '{name}' is not registered."
    if close:
        message += " Did you mean: " + ", ".join(f"'{c}'" for c in close) + "?"
    message += (
        f" ({len(registered)} datasets are registered; see DatasetCatalog.list(). Register your "
        "own with ddod.data.register_coco_dataset.)"
    )
    return UnknownDatasetError(message)


def check_dataset_files(names: Union[str, Sequence[str]]):
    """Check that every named dataset is registered and its files exist.

    Digits datasets are generated if needed. A dataset whose metadata has no ``json_file`` /
    ``image_root`` (registered with a custom loader) is only checked for registration.

    Raises:
        UnknownDatasetError (a KeyError): a name is not registered; lists close names.
        FileNotFoundError: a ``json_file`` or ``image_root`` does not exist; names the dataset
            and the path, and for detectron2's built-in datasets the expected layout.
    """
    if isinstance(names, str):
        names = [names]
    for name in names:
        if name not in DatasetCatalog.list():
            raise _unknown_dataset_error(name)
        if is_digits_dataset(name):
            ensure_digits_dataset(name)
        metadata = MetadataCatalog.get(name)
        json_file = getattr(metadata, "json_file", None)
        image_root = getattr(metadata, "image_root", None)
        missing = [
            (what, path)
            for what, path in (("annotation file", json_file), ("image directory", image_root))
            # URLs (some LVIS jsons) are fetched by the loader itself.
            if path is not None and "://" not in str(path) and not os.path.exists(path)
        ]
        if not missing:
            continue
        message = f"Dataset '{name}' cannot be loaded: " + "; ".join(
            f"its {what} '{path}' does not exist" for what, path in missing
        )
        message += "."
        if name in _builtin_layouts():
            message += "\n" + _builtin_hint(name)
        else:
            message += (
                f"\nIt is registered with json_file='{json_file}' and image_root='{image_root}'; "
                "fix the files or register the dataset with the right paths."
            )
        raise FileNotFoundError(message)


def get_detection_dataset_dicts_checked(names: Union[str, List[str]], **kwargs) -> List[Dict]:
    """detectron2's ``get_detection_dataset_dicts`` after :func:`check_dataset_files`.

    Args:
        names: a dataset name or a list of names.
        kwargs: passed on to ``get_detection_dataset_dicts``; in detectron2 v0.6 these are
            ``filter_empty=True`` (drop images without non-crowd annotations),
            ``min_keypoints=0``, ``proposal_files=None`` and ``check_consistency=True``.

    Returns:
        list[dict]: the concatenated dataset dicts, in detectron2's standard format.
    """
    check_dataset_files(names)
    return get_detection_dataset_dicts(names, **kwargs)
