"""Record the label assignment a detector makes on given training inputs, through its own code.

:func:`record_assignments` runs the model's training forward on one image and catches the
arguments and the result of its ``label_anchors`` call, then stops before the losses. The
anchors, ground truth (after the model's own clipping and filtering) and per-anchor labels are
therefore exactly those of a training step, for any assigner the model is built with (ATSS,
cost-based ATSS, MaxIoU, FCOS points, ...): nothing here re-implements an assigner.

Two things differ from a training step, on purpose:

* normalisation layers use their running statistics (eval mode): the predictions that cost-based
  assigners score are then those of the trained model on this image alone, not of a batch
  statistic of one image;
* nothing is updated: the losses (and DDOD's level re-weighting counters, which they advance)
  are never computed.
"""

import contextlib
import inspect
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from detectron2.utils.events import EventStorage

__all__ = ["ImageAssignment", "record_assignments", "image_from_model_input"]


@dataclass
class ImageAssignment:
    """The assignment of one image, in the model's input coordinates (after the data mapper).

    Attributes:
        image: (H, W, 3) uint8 RGB, the image as the model received it (before batch padding).
        gt_boxes: (M, 4) XYXY float, the ground truth the assigners saw.
        gt_classes: (M,) int.
        anchors: (R, 4) XYXY float, all levels concatenated.
        level_names: e.g. ["p3", ..., "p7"]; level_sizes: anchors per level (sums to R);
            level_strides: stride of each level.
        cls_labels, reg_labels: (R,) int: -1 ignored, ``num_classes`` background, else the
            class of the assigned ground truth; the labels of the classification and the
            regression assignment (the same array when the model shares one assignment).
        num_classes: K.
    """

    image: np.ndarray
    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    anchors: np.ndarray
    level_names: List[str]
    level_sizes: List[int]
    level_strides: List[int]
    cls_labels: np.ndarray
    reg_labels: np.ndarray
    num_classes: int

    def positives(self, branch: str) -> np.ndarray:
        """(R,) bool: the anchors assigned to an object by the "cls" or "reg" assignment."""
        labels = {"cls": self.cls_labels, "reg": self.reg_labels}[branch]
        return (labels >= 0) & (labels < self.num_classes)

    def level_slices(self) -> List[slice]:
        """The anchor index range of each level."""
        ends = np.cumsum(self.level_sizes)
        return [slice(int(e - n), int(e)) for e, n in zip(ends, self.level_sizes)]

    def level_counts(self) -> Dict[str, Dict[str, int]]:
        """{level: {"cls": positives, "reg": positives}}, counted over anchors."""
        cls, reg = self.positives("cls"), self.positives("reg")
        return {
            name: {"cls": int(cls[s].sum()), "reg": int(reg[s].sum())}
            for name, s in zip(self.level_names, self.level_slices())
        }


class _Recorded(Exception):
    """Raised by the wrapped ``label_anchors`` to stop the forward before the losses."""


@contextlib.contextmanager
def _training_forward_with_frozen_norms(model: nn.Module):
    """``model.training`` is True (so that the forward takes the training path) while
    batch-norm layers use their running statistics; every module's mode is restored after."""
    modes = {m: m.training for m in model.modules()}
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) or "BatchNorm" in type(m).__name__:
            m.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def image_from_model_input(model: nn.Module, image: torch.Tensor) -> np.ndarray:
    """A mapped (C, H, W) input image in the model's ``input_format`` -> (H, W, 3) uint8 RGB."""
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    if getattr(model, "input_format", "BGR") == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array.clip(0, 255).astype(np.uint8))


def _level_strides(model: nn.Module, num_levels: int) -> List[int]:
    strides = getattr(getattr(model, "anchor_generator", None), "strides", None)
    if strides is None or len(strides) != num_levels:
        return [0] * num_levels  # unknown: titles then omit the stride
    return [int(s) for s in strides]


def record_assignments(model: nn.Module, inputs: Sequence[Dict]) -> List[ImageAssignment]:
    """The label assignment ``model`` makes on each input, one image at a time.

    Args:
        model: a detector with a ``label_anchors(anchors, num_anchors_per_level, valid,
            gt_instances, ...)`` method called by its training forward and returning
            ``(cls_labels, reg_labels, ...)`` of shape (N, R) (:class:`ddod.modeling.DDOD`).
        inputs: training inputs as the data mapper makes them (``"image"`` and
            ``"instances"`` with ``gt_boxes``/``gt_classes``).

    Returns:
        one :class:`ImageAssignment` per input.
    """
    if not callable(getattr(model, "label_anchors", None)):
        raise TypeError(
            f"{type(model).__name__} has no label_anchors method: the assignment view needs a "
            "detector of this project (ddod.modeling.DDOD)."
        )
    signature = inspect.signature(model.label_anchors)
    level_names = list(getattr(model, "head_in_features", []))
    results = []
    for item in inputs:
        if "instances" not in item:
            raise ValueError("An input has no 'instances': use a mapper that keeps annotations.")
        recorded = {}
        original = model.label_anchors

        def recording_label_anchors(*args, **kwargs):
            out = original(*args, **kwargs)
            recorded["args"] = signature.bind(*args, **kwargs).arguments
            recorded["out"] = out
            raise _Recorded

        model.label_anchors = recording_label_anchors  # shadows the method on this instance only
        try:
            with _training_forward_with_frozen_norms(model), EventStorage(), torch.no_grad():
                model([item])
        except _Recorded:
            pass
        finally:
            del model.label_anchors
        if not recorded:
            raise RuntimeError(
                f"{type(model).__name__}'s training forward did not call label_anchors."
            )
        args, out = recorded["args"], recorded["out"]
        sizes = [int(n) for n in args["num_anchors_per_level"]]
        gt = args["gt_instances"][0]
        names = level_names
        if len(names) != len(sizes):
            names = [f"level {i}" for i in range(len(sizes))]
        results.append(
            ImageAssignment(
                image=image_from_model_input(model, item["image"]),
                gt_boxes=gt.gt_boxes.tensor.cpu().numpy(),
                gt_classes=gt.gt_classes.cpu().numpy(),
                anchors=args["anchors"].detach().cpu().numpy(),
                level_names=names,
                level_sizes=sizes,
                level_strides=_level_strides(model, len(sizes)),
                cls_labels=out[0][0].cpu().numpy(),
                reg_labels=out[1][0].cpu().numpy(),
                num_classes=int(model.num_classes),
            )
        )
    return results
