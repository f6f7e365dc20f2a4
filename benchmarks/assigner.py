"""Inputs for the label assigners alone: DDOD's real anchors for an image size and random
ground truth and predictions.

The anchors are those of ``configs/common/models/ddod.py`` (one square anchor of 8 x stride per
location on P3-P7, strides 8-128, offset 0) on the feature maps of an image padded to a multiple
of 128 (the FPN's size divisibility), exactly what the detector assigns over.
"""
import math
from typing import List, Tuple

import torch

from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform

from ddod.modeling import ATSSAssigner, CostATSSAssigner

from .models import random_gt_boxes

STRIDES = (8, 16, 32, 64, 128)
SIZE_DIVISIBILITY = 128


def ddod_anchors(height: int, width: int, device: torch.device) -> Tuple[torch.Tensor, List[int]]:
    """(R, 4) anchors of all levels and the number per level, for one (height, width) image."""
    generator = DefaultAnchorGenerator(
        sizes=[[8 * s] for s in STRIDES], aspect_ratios=[1.0], strides=list(STRIDES), offset=0.0
    ).to(device)
    ph = math.ceil(height / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    pw = math.ceil(width / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    features = [
        torch.empty(1, 1, math.ceil(ph / s), math.ceil(pw / s), device=device) for s in STRIDES
    ]
    per_level = generator(features)
    return torch.cat([b.tensor for b in per_level]), [len(b) for b in per_level]


def assigner_inputs(
    height: int,
    width: int,
    num_gt: int,
    device: torch.device,
    *,
    num_classes: int = 80,
    seed: int = 0,
) -> dict:
    """Keyword arguments of one assigner call on one image.

    Predictions: logits ~ N(-4, 1.5^2) (a detector a little way into training) and boxes decoded
    from deltas ~ N(0, 0.1^2) around the anchors, with DDOD's delta coder.
    """
    g = torch.Generator().manual_seed(seed)
    anchors, per_level = ddod_anchors(height, width, torch.device("cpu"))
    num_anchors = anchors.shape[0]
    logits = torch.randn(num_anchors, num_classes, generator=g) * 1.5 - 4.0
    deltas = torch.randn(num_anchors, 4, generator=g) * 0.1
    pred_boxes = Box2BoxTransform((10.0, 10.0, 5.0, 5.0)).apply_deltas(deltas, anchors)
    return {
        "anchors": anchors.to(device),
        "num_anchors_per_level": per_level,
        "gt_boxes": random_gt_boxes(num_gt, height, width, g).to(device),
        "gt_classes": torch.randint(0, num_classes, (num_gt,), generator=g).to(device),
        "valid_mask": torch.ones(num_anchors, dtype=torch.bool, device=device),
        "pred_logits": logits.to(device),
        "pred_boxes": pred_boxes.to(device),
    }


def call_assigner(assigner, inputs: dict):
    kwargs = dict(inputs)
    args = (kwargs.pop("anchors"), kwargs.pop("num_anchors_per_level"))
    args += (kwargs.pop("gt_boxes"), kwargs.pop("gt_classes"))
    if not assigner.uses_predictions:
        kwargs.pop("pred_logits")
        kwargs.pop("pred_boxes")
    return assigner(*args, **kwargs)


def assigners():
    """{name: assigner}: DDOD's classification assigner and its baseline, plain ATSS."""
    return {
        "CostATSS a=0.8 (DDOD)": CostATSSAssigner(alpha=0.8, topk=9),
        "ATSS (IoU)": ATSSAssigner(topk=9),
    }
