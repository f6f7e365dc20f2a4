"""Evaluators."""

from .coco import build_coco_evaluator

__all__ = ["build_coco_evaluator"]
