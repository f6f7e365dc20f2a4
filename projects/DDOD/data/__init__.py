"""Datasets: the built-in digits detection dataset and checked COCO-format dataset helpers.

Importing this package registers ``digits_det_train`` and ``digits_det_val``.
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

register_all_digits()

__all__ = [
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
