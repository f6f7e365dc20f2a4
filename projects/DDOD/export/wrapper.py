"""An export-ready form of any ``DDOD``-family detector: one image tensor in; boxes, scores and
classes out; normalisation, padding, anchors, decoding, thresholds and NMS inside the graph.

The eager model's inference (``DDOD.candidates_single_image``) thresholds first and then keeps
the top-k pairs of each level; a data-dependent ``if`` on the count there would be frozen by a
tracer. Here each level keeps its top ``min(k, pairs)`` first (a size known at export time) and
the threshold is applied after decoding, as a mask: the same set of candidates (a threshold
keeps a prefix of the sorted scores), with no Python branch on data. The post-processing part
runs as in eager mode; only parts with ``exportable = True`` (class-aware NMS, which becomes
torchvision's ``nms`` in TorchScript and ``NonMaxSuppression`` in ONNX) are accepted.

The graph is exported for one input size (H, W) (anchors and padding are constants of it): feed
images resized and padded to that size, e.g. with :func:`letterbox`.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detectron2.structures import Boxes

__all__ = ["ExportableDetector", "NotExportableError", "check_exportable", "letterbox"]


class NotExportableError(RuntimeError):
    """A model, or one of its parts, that cannot be exported, with the reason."""


def check_exportable(model: nn.Module) -> None:
    """Raise :class:`NotExportableError` naming the part that cannot be exported and why."""
    for name in ("backbone", "head", "anchor_generator", "box2box_transform", "postprocess"):
        if not hasattr(model, name):
            raise NotExportableError(
                f"{type(model).__name__} has no '{name}': only the DDOD meta-architecture "
                "(every detector of this project) can be exported."
            )
    post = model.postprocess
    if not getattr(post, "exportable", False):
        reason = getattr(post, "not_exportable_reason", "it is not marked exportable")
        raise NotExportableError(
            f"model.postprocess={type(post).__name__} cannot be exported: {reason}. "
            "Set model.postprocess to ClassAwareNMS (the default, None) to export."
        )
    for module_name, module in model.named_modules():
        reason = getattr(module, "not_exportable_reason", None)
        if reason and not getattr(module, "exportable", False) and module is not post:
            raise NotExportableError(f"model.{module_name} cannot be exported: {reason}.")


class ExportableDetector(nn.Module):
    """Wraps a ``DDOD`` model (in eval mode) for TorchScript tracing and ONNX export.

    forward: (3, H, W) image (uint8 or float, the model's input format, e.g. BGR 0-255) ->
    boxes (D, 4) float32 XYXY in the image's pixels, scores (D,) float32, classes (D,) int64;
    D <= ``max_detections_per_image``, in decreasing score.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        model = getattr(model, "module", model)
        check_exportable(model)
        self.model = model.eval()

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        model = self.model
        h, w = int(image.shape[-2]), int(image.shape[-1])
        x = (image.float()[None] - model.pixel_mean[None]) / model.pixel_std[None]
        # padding to the backbone's stride multiple, as ImageList.from_tensors (zeros after
        # normalisation)
        d = max(int(model.backbone.size_divisibility), 1)
        x = F.pad(x, (0, (-w) % d, 0, (-h) % d))
        features, predictions = model.features_and_predictions(x)
        cls_logits, bbox_deltas, quality, _ = model._flatten_predictions(predictions)
        anchors = model.anchor_generator(features)

        boxes_all, scores_all, cls_all, classes_all = [], [], [], []
        for level, anchors_l in enumerate(anchors):
            cls_scores = cls_logits[level][0].float().sigmoid().flatten()
            k = min(int(model.test_topk_candidates), int(cls_scores.shape[0]))
            cls_scores, idx = cls_scores.topk(k)
            anchor_idx = torch.div(idx, model.num_classes, rounding_mode="floor")
            boxes = model._decode(
                bbox_deltas[level][0][anchor_idx].float(), anchors_l.tensor[anchor_idx]
            )
            scores = model.detection_scores(
                cls_scores, quality[level][0][anchor_idx] if quality else None
            )
            boxes_all.append(boxes)
            scores_all.append(scores)
            cls_all.append(cls_scores)
            classes_all.append(idx % model.num_classes)
        boxes = torch.cat(boxes_all)
        # Boxes.clip() without its assert on finiteness (a data-dependent check); same clamps
        boxes = torch.stack([
            boxes[:, 0].clamp(min=0, max=w), boxes[:, 1].clamp(min=0, max=h),
            boxes[:, 2].clamp(min=0, max=w), boxes[:, 3].clamp(min=0, max=h),
        ], dim=1)  # fmt: skip
        keep = (torch.cat(cls_all) > model.test_score_thresh) & Boxes(boxes).nonempty()
        boxes, scores, classes = model.postprocess(
            boxes[keep], torch.cat(scores_all)[keep], torch.cat(classes_all)[keep],
            model.max_detections_per_image,
        )  # fmt: skip
        return boxes, scores, classes


def letterbox(image: Tensor, height: int, width: int) -> Tuple[Tensor, float]:
    """Resize a (C, h, w) image to fit in (height, width) keeping its aspect ratio, then pad it
    at the bottom and right with zeros. Returns the (C, height, width) image (same dtype) and the
    scale (divide the exported model's boxes by it to get boxes in the original image)."""
    h, w = image.shape[-2:]
    scale = min(height / h, width / w)
    nh, nw = min(height, round(h * scale)), min(width, round(w * scale))
    resized = image
    if (nh, nw) != (h, w):
        resized = F.interpolate(
            image[None].float(), size=(nh, nw), mode="bilinear", align_corners=False,
            antialias=True,
        )[0]  # fmt: skip
        if image.dtype == torch.uint8:
            resized = resized.round().clamp(0, 255).to(torch.uint8)
    out = image.new_zeros((image.shape[0], height, width))
    out[:, :nh, :nw] = resized
    return out, scale
