"""Box coders (anchor/point + deltas <-> boxes) beyond detectron2's ``Box2BoxTransform``.

The meta-architecture only needs ``get_deltas(src, target)`` and ``apply_deltas(deltas, src)``,
so any of detectron2's coders, or the one below, can be configured:

* ``detectron2.modeling.box_regression.Box2BoxTransform(weights)``: R-CNN's (dx, dy, dw, dh)
  deltas, used by RetinaNet (weights 1, 1, 1, 1) and ATSS/DDOD (weights 10, 10, 5, 5, i.e.
  mmdetection's stds 0.1, 0.1, 0.2, 0.2);
* :class:`Box2BoxTransformLTRB`: FCOS's distances from the point to the four box sides.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Box2BoxTransformLTRB"]


class Box2BoxTransformLTRB:
    """FCOS's box coding: deltas are the distances (l, t, r, b) from the centre of the source box
    (an anchor point) to the four sides of the target box, optionally divided by the source box's
    size.

    detectron2 v0.6's ``Box2BoxTransformLinear`` divides all four distances by the source box's
    *width*, which is only right for square sources; here l and r are divided by the width and
    t and b by the height (as detectron2 does after v0.6). On square sources (FCOS points are
    stride x stride squares) both agree. ``apply_deltas`` clamps negative distances to 0 (a ReLU,
    as FCOS), so every decoded box contains its point.
    """

    def __init__(self, *, normalize_by_size: bool = True, size_divisor: float = 1.0):
        """
        Args:
            normalize_by_size: divide distances by the source box's width (l, r) and height (t, b);
                with FCOS points of side = stride this is FCOS's ``norm_on_bbox``.
            size_divisor: with ``normalize_by_size``, the unit is the source's size divided by
                this: GFL's distances are in strides on 8 x stride anchors, so 8.
        """
        if size_divisor <= 0:
            raise ValueError(f"size_divisor must be > 0, got {size_divisor}.")
        self.normalize_by_size = normalize_by_size
        self.size_divisor = float(size_divisor)

    def _sizes(self, src_boxes: Tensor) -> Tensor:
        w = src_boxes[:, 2] - src_boxes[:, 0]
        h = src_boxes[:, 3] - src_boxes[:, 1]
        sizes = torch.stack([w, h, w, h], dim=1)
        return sizes if self.size_divisor == 1.0 else sizes / self.size_divisor

    def get_deltas(self, src_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        """(R, 4) XYXY sources, (R, 4) XYXY targets -> (R, 4) deltas (l, t, r, b)."""
        ctr_x = (src_boxes[:, 0] + src_boxes[:, 2]) / 2
        ctr_y = (src_boxes[:, 1] + src_boxes[:, 3]) / 2
        deltas = torch.stack(
            [
                ctr_x - target_boxes[:, 0],
                ctr_y - target_boxes[:, 1],
                target_boxes[:, 2] - ctr_x,
                target_boxes[:, 3] - ctr_y,
            ],
            dim=1,
        )
        if self.normalize_by_size:
            deltas = deltas / self._sizes(src_boxes)
        return deltas

    def apply_deltas(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """(R, 4) deltas (l, t, r, b) on (R, 4) XYXY sources -> (R, 4) XYXY boxes."""
        deltas = F.relu(deltas)
        boxes = boxes.to(deltas.dtype)
        if self.normalize_by_size:
            deltas = deltas * self._sizes(boxes)
        ctr_x = (boxes[:, 0] + boxes[:, 2]) / 2
        ctr_y = (boxes[:, 1] + boxes[:, 3]) / 2
        return torch.stack(
            [
                ctr_x - deltas[:, 0],
                ctr_y - deltas[:, 1],
                ctr_x + deltas[:, 2],
                ctr_y + deltas[:, 3],
            ],
            dim=1,
        )
