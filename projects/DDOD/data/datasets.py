"""Registering COCO-format datasets and loading them with early, readable errors.

detectron2 registers its built-in datasets (``coco_2017_train``, ...) at hard-coded paths under
``$DETECTRON2_DATASETS`` and reads the files only when a dataset is first loaded, deep inside a
data loader build. :func:`get_detection_dataset_dicts_checked` checks the paths first and says what
is missing and where it should be; the LazyConfig data configs of this project use it in place of
detectron2's ``get_detection_dataset_dicts``.
"""

import difflib
import logging
import math
import os
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.data.build import filter_images_with_only_crowd_annotations
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import BoxMode

from .digits import ensure_digits_dataset, is_digits_dataset

__all__ = [
    "UnknownDatasetError",
    "register_coco_dataset",
    "check_dataset_files",
    "get_detection_dataset_dicts_checked",
    "drop_invalid_boxes",
]

logger = logging.getLogger(__name__)

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
        elif getattr(metadata, "missing_files_hint", None):
            # a loader with its own layout (e.g. WIDER FACE) explains it
            message += "\n" + metadata.missing_files_hint
        else:
            message += (
                f"\nIt is registered with json_file='{json_file}' and image_root='{image_root}'; "
                "fix the files or register the dataset with the right paths."
            )
        raise FileNotFoundError(message)


def _box_problem(annotation: Dict, width: Optional[float], height: Optional[float]):
    """Why an annotation's box cannot be trained on, or None if it is fine.

    Only absolute axis-aligned boxes are checked; other modes (relative, rotated) pass.
    """
    mode = annotation.get("bbox_mode", BoxMode.XYWH_ABS)
    if mode not in (BoxMode.XYWH_ABS, BoxMode.XYXY_ABS):
        return None
    bbox = annotation.get("bbox")
    if bbox is None or len(bbox) != 4:
        return "malformed (not 4 numbers)"
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        return "malformed (not 4 numbers)"
    if not all(math.isfinite(v) for v in values):
        return "non-finite coordinates"
    x0, y0, x1, y1 = BoxMode.convert(values, mode, BoxMode.XYXY_ABS)
    if x1 <= x0 or y1 <= y0:
        return "zero or negative width/height"
    if width is not None and height is not None:
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            return "entirely outside the image"
    return None


def drop_invalid_boxes(dataset_dicts: List[Dict], dataset_name: str = "dataset") -> List[Dict]:
    """Remove annotations whose box cannot be trained on, and log what was removed.

    Removed: boxes with non-finite coordinates, with zero or negative width or height
    (detectron2 would silently turn an inverted box into a valid one by reordering its corners),
    and boxes entirely outside their image. Boxes partly outside the image are kept: the
    ``DatasetMapper`` clips them to the image. Crowd boxes are kept (the mapper drops them from
    training). Images are kept even if no annotation is left (``filter_empty`` decides).

    Returns:
        a new list; dicts with removed annotations are shallow copies, the input is not modified.
    """
    reasons = Counter()
    examples = {}
    cleaned = []
    total = 0
    for record in dataset_dicts:
        annotations = record.get("annotations")
        if not annotations:
            cleaned.append(record)
            continue
        kept = []
        for annotation in annotations:
            total += 1
            problem = _box_problem(annotation, record.get("width"), record.get("height"))
            if problem is None:
                kept.append(annotation)
                continue
            reasons[problem] += 1
            examples.setdefault(
                problem, f"{record.get('file_name', '?')} bbox={list(annotation.get('bbox', []))}"
            )
        if len(kept) != len(annotations):
            record = dict(record, annotations=kept)
        cleaned.append(record)
    if reasons:
        details = "; ".join(
            f"{count} with {problem} (e.g. {examples[problem]})"
            for problem, count in reasons.most_common()
        )
        logger.warning(
            f"Dataset '{dataset_name}': dropped {sum(reasons.values())} of {total} annotations "
            f"whose box cannot be trained on: {details}."
        )
    return cleaned


def get_detection_dataset_dicts_checked(
    names: Union[str, List[str]],
    filter_empty: bool = True,
    *,
    drop_invalid: bool = True,
    **kwargs,
) -> List[Dict]:
    """detectron2's ``get_detection_dataset_dicts`` after :func:`check_dataset_files`, with
    invalid boxes removed first (:func:`drop_invalid_boxes`).

    Args:
        names: a dataset name or a list of names.
        filter_empty: drop images without non-crowd annotations (after invalid boxes are
            removed, so an image whose only boxes were invalid is dropped too).
        drop_invalid: remove (and log) annotations with non-finite, zero-size, inverted or
            entirely out-of-image boxes.
        kwargs: passed on to ``get_detection_dataset_dicts``; in detectron2 v0.6 these are
            ``min_keypoints=0``, ``proposal_files=None`` and ``check_consistency=True``.

    Returns:
        list[dict]: the concatenated dataset dicts, in detectron2's standard format.
    """
    check_dataset_files(names)
    if not drop_invalid:
        return get_detection_dataset_dicts(names, filter_empty=filter_empty, **kwargs)
    dicts = get_detection_dataset_dicts(names, filter_empty=False, **kwargs)
    if not isinstance(dicts, list):  # a torch Dataset: nothing to inspect
        return dicts
    label = names if isinstance(names, str) else ",".join(names)
    dicts = drop_invalid_boxes(dicts, label)
    if filter_empty and dicts and "annotations" in dicts[0]:
        dicts = filter_images_with_only_crowd_annotations(dicts)
        if not dicts:
            raise ValueError(f"No image of dataset '{label}' has a valid, non-crowd annotation.")
    return dicts
