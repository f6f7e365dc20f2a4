"""Test-time augmentation (multi-scale + horizontal flip) around any detector of the project.

detectron2's ``GeneralizedRCNNWithTTA`` accepts only R-CNN models. Every detector here is the
``DDOD`` meta-architecture with different parts, so one wrapper serves them all: for each view
(short side in ``min_sizes`` capped at ``max_size``, each also flipped when ``flip``) it runs the
backbone and head, takes the scored candidates *before* NMS (``DDOD.candidates``), maps their
boxes back to the original image, and merges the candidates of all views with one
post-processing part (modeling/postprocess.py: NMS, Soft-NMS or box voting). Merging candidates
rather than each view's final detections lets a box seen in one view only still compete.

Python::

    tta = DenseDetectorWithTTA(model, min_sizes=[640, 800, 960], max_size=1600, flip=True,
                               merge=SoftNMS("gaussian"))
    outputs = tta([{"image": image_chw, "height": h, "width": w}])   # [{"instances": ...}]

With ``train_net.py --eval-only``: ``test.aug.enabled=True`` (keys in :func:`tta_defaults`).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detectron2.data.transforms import ResizeShortestEdge
from detectron2.structures import Boxes, Instances

from .postprocess import POSTPROCESS_METHODS, build_postprocess

__all__ = ["DenseDetectorWithTTA", "tta_defaults", "add_test_defaults"]


def tta_defaults() -> Dict:
    """The ``test.aug`` keys of a LazyConfig and their defaults (detectron2's ``TEST.AUG``:
    short sides 400..1200, max size 4000, flip). ``merge.method`` is "model" (the model's own
    post-processing, e.g. NMS at its ``test_nms_thresh``) or one of
    :data:`~ddod.modeling.postprocess.POSTPROCESS_METHODS`, with the parameters of
    :func:`~ddod.modeling.postprocess.build_postprocess`."""
    return dict(
        enabled=False,
        min_sizes=[400, 500, 600, 700, 800, 900, 1000, 1100, 1200],
        max_size=4000,
        flip=True,
        merge=dict(
            method="model",
            iou_thresh=0.6,
            sigma=0.5,
            soft_iou_thresh=0.3,
            score_thresh=0.001,
            vote_thresh=0.8,
        ),
    )


def add_test_defaults(cfg):
    """Give a LazyConfig without a ``test`` section the default one (so that command-line
    overrides such as ``test.aug.enabled=True`` find their keys); missing keys of an existing
    ``test.aug`` are filled in too. Returns ``cfg``."""
    from omegaconf import OmegaConf

    defaults = OmegaConf.create({"aug": tta_defaults()})
    if "test" not in cfg:
        cfg.test = defaults
    else:
        cfg.test = OmegaConf.merge(defaults, cfg.test)
    return cfg


class DenseDetectorWithTTA(nn.Module):
    """Multi-scale and flip inference of a ``DDOD``-family model (any head, assigner, coder).

    Input and output as the model's ``forward`` in eval mode: a list of dicts with "image"
    (C, H, W) in the model's input format and optionally "height", "width" (the size to report
    boxes in, by default the image's); returns ``[{"instances": Instances}]`` with
    ``pred_boxes``, ``scores``, ``pred_classes`` in that frame, at most the model's
    ``max_detections_per_image``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        min_sizes: Sequence[int] = (400, 500, 600, 700, 800, 900, 1000, 1100, 1200),
        max_size: int = 4000,
        flip: bool = True,
        merge: Optional[nn.Module] = None,
    ):
        """
        Args:
            model: a ``DDOD`` (possibly wrapped in DistributedDataParallel).
            min_sizes: the short side of each scale; the image is resized from its given size
                (0 or the image's own short side: the image as given, not resized).
            max_size: cap on the long side of a resized view.
            flip: also run every scale horizontally flipped.
            merge: post-processing part applied to the union of all views' candidates; None
                uses the model's own (``model.postprocess``).
        """
        super().__init__()
        model = getattr(model, "module", model)  # unwrap DDP
        if not hasattr(model, "candidates"):
            raise TypeError(
                f"DenseDetectorWithTTA needs a model with a candidates() hook (the DDOD "
                f"meta-architecture), got {type(model).__name__}."
            )
        if not len(min_sizes):
            raise ValueError("test.aug.min_sizes must name at least one short side.")
        self.model = model
        self.min_sizes = [int(s) for s in min_sizes]
        self.max_size = int(max_size)
        self.flip = bool(flip)
        self.merge = model.postprocess if merge is None else merge

    @classmethod
    def from_config(cls, model: nn.Module, aug) -> "DenseDetectorWithTTA":
        """Build from a ``test.aug`` section (see :func:`tta_defaults`)."""
        merge_cfg = dict(aug.get("merge", {}) or {})
        method = merge_cfg.pop("method", "model")
        if method == "model":
            merge = None
        elif method in POSTPROCESS_METHODS:
            merge = build_postprocess(method, **merge_cfg)
        else:
            raise ValueError(
                f"test.aug.merge.method={method!r}; one of {('model',) + POSTPROCESS_METHODS}."
            )
        return cls(
            model,
            min_sizes=list(aug.min_sizes),
            max_size=aug.max_size,
            flip=aug.flip,
            merge=merge,
        )

    def _view_size(self, h: int, w: int, min_size: int):
        if min_size <= 0 or (min(h, w) == min_size and max(h, w) <= self.max_size):
            return h, w
        return ResizeShortestEdge.get_output_shape(h, w, min_size, self.max_size)

    def _view_candidates(self, images: List[Tensor]):
        """Candidates of equal-size views run as one batch: per view (boxes, scores, classes)
        in the view's frame."""
        model = self.model
        image_list = model.preprocess_image([{"image": x} for x in images])
        features, predictions = model.features_and_predictions(image_list.tensor)
        return model.candidates(features, predictions, image_list.image_sizes)

    @torch.no_grad()
    def forward(self, batched_inputs: List[Dict]) -> List[Dict[str, Instances]]:
        return [{"instances": self._inference_one(x)} for x in batched_inputs]

    def _inference_one(self, inputs: Dict) -> Instances:
        image = inputs["image"]
        h, w = image.shape[-2:]
        out_h, out_w = int(inputs.get("height", h)), int(inputs.get("width", w))
        boxes_all, scores_all, classes_all = [], [], []
        for min_size in self.min_sizes:
            vh, vw = self._view_size(h, w, min_size)
            view = image
            if (vh, vw) != (h, w):
                # antialiased bilinear, as detectron2's PIL resize of the test mapper
                view = F.interpolate(
                    image[None].float(), size=(vh, vw), mode="bilinear", align_corners=False,
                    antialias=True,
                )[0]  # fmt: skip
                if image.dtype == torch.uint8:
                    view = view.round().clamp(0, 255).to(torch.uint8)
            views = [view, view.flip(-1)] if self.flip else [view]
            for flipped, (boxes, scores, classes) in enumerate(self._view_candidates(views)):
                if flipped:
                    boxes = torch.stack(
                        [vw - boxes[:, 2], boxes[:, 1], vw - boxes[:, 0], boxes[:, 3]], dim=1
                    )
                scale = boxes.new_tensor([out_w / vw, out_h / vh, out_w / vw, out_h / vh])
                boxes_all.append(boxes * scale)
                scores_all.append(scores)
                classes_all.append(classes)
        boxes = Boxes(torch.cat(boxes_all))
        boxes.clip((out_h, out_w))
        boxes, scores, classes = self.merge(
            boxes.tensor, torch.cat(scores_all), torch.cat(classes_all),
            self.model.max_detections_per_image,
        )  # fmt: skip
        result = Instances((out_h, out_w))
        result.pred_boxes = Boxes(boxes)
        result.scores = scores
        result.pred_classes = classes
        return result

    def extra_repr(self) -> str:
        return f"min_sizes={self.min_sizes}, max_size={self.max_size}, flip={self.flip}"

