"""Evaluators."""

from .coco import build_coco_evaluator
from .widerface import (
    WiderFaceEvaluator,
    load_widerface_eval_gt,
    read_widerface_predictions,
    widerface_average_precision,
    write_widerface_predictions,
)

__all__ = [
    "build_coco_evaluator",
    "WiderFaceEvaluator",
    "load_widerface_eval_gt",
    "read_widerface_predictions",
    "widerface_average_precision",
    "write_widerface_predictions",
]
