"""Datasets: the built-in digits detection dataset and checked COCO-format dataset helpers.

Importing this package registers ``digits_det_train`` and ``digits_det_val``, and
``widerface_train`` / ``widerface_val`` under ``$DETECTRON2_DATASETS/widerface`` (widerface.py).
"""

from .datasets import (
    UnknownDatasetError,
    check_dataset_files,
    drop_invalid_boxes,
    get_detection_dataset_dicts_checked,
    register_coco_dataset,
)
from .digits import (
    DIGITS_CLASSES,
    default_digits_root,
    ensure_digits_dataset,
    ensure_digits_split,
    generate_digits_split,
    is_digits_dataset,
    register_all_digits,
    register_digits_dataset,
)
from .loader import (
    DatasetImageError,
    FileNamingMapper,
    ResumableTrainLoader,
    TrainingStream,
    build_resumable_train_loader,
    build_test_loader,
)
from .widerface import (
    WIDERFACE_ATTRIBUTES,
    WIDERFACE_SUBSETS,
    default_widerface_root,
    load_widerface,
    parse_widerface_bbx_gt,
    register_all_widerface,
    register_widerface,
    widerface_paths,
)
from .widerface_synthetic import (
    synthetic_subsets,
    write_synthetic_widerface,
    write_widerface_eval_gt,
)
from .face_augmentation import BoxAwareDatasetMapper, RandomSquareCrop

register_all_digits()
register_all_widerface()

__all__ = [
    "BoxAwareDatasetMapper",
    "RandomSquareCrop",
    "WIDERFACE_ATTRIBUTES",
    "WIDERFACE_SUBSETS",
    "default_widerface_root",
    "load_widerface",
    "parse_widerface_bbx_gt",
    "register_all_widerface",
    "register_widerface",
    "widerface_paths",
    "synthetic_subsets",
    "write_synthetic_widerface",
    "write_widerface_eval_gt",
    "DIGITS_CLASSES",
    "DatasetImageError",
    "FileNamingMapper",
    "ResumableTrainLoader",
    "TrainingStream",
    "build_resumable_train_loader",
    "build_test_loader",
    "drop_invalid_boxes",
    "UnknownDatasetError",
    "check_dataset_files",
    "default_digits_root",
    "ensure_digits_dataset",
    "ensure_digits_split",
    "generate_digits_split",
    "get_detection_dataset_dicts_checked",
    "is_digits_dataset",
    "register_all_digits",
    "register_coco_dataset",
    "register_digits_dataset",
]
