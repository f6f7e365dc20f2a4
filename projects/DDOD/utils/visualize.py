"""Pictures of ground truth and predictions: boxes drawn by detectron2's ``Visualizer`` (ground
truth in green, detections in red with their class and score), panels titled with
:mod:`ddod.utils.panels`, written as PNG files."""

import logging
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from matplotlib.patches import Patch

from detectron2.data import Metadata
from detectron2.data.detection_utils import read_image
from detectron2.structures import BoxMode, Instances
from detectron2.utils.visualizer import Visualizer

from .panels import panel_figure, picture_path, save_figure, show_image

__all__ = [
    "GT_COLOR",
    "DETECTION_COLOR",
    "draw_ground_truth",
    "gt_boxes_and_classes",
    "default_scale",
    "draw_predictions",
    "prediction_figure",
    "save_prediction_images",
]

logger = logging.getLogger(__name__)

GT_COLOR = (0.2, 0.9, 0.2)
DETECTION_COLOR = (1.0, 0.2, 0.2)
# Small images (the digits are 256 px) are drawn larger so that labels stay legible; large ones
# smaller. The longer side is brought to about this many pixels, within [0.5, 2] x.
PANEL_PX = 384


def default_scale(height: int, width: int) -> float:
    """Output pixels per image pixel for a panel of an image of this size."""
    return float(np.clip(PANEL_PX / max(height, width), 0.5, 2.0))


def _as_instances(prediction: Union[Instances, Dict]) -> Instances:
    """Accept a model output dict (``{"instances": ...}``) or an ``Instances``; move to CPU."""
    if isinstance(prediction, dict):
        if "instances" not in prediction:
            raise ValueError(
                f"Expected a model output with an 'instances' key, got keys {sorted(prediction)}"
            )
        prediction = prediction["instances"]
    return prediction.to("cpu")


def _class_name(metadata: Optional[Metadata], index: int) -> str:
    names = metadata.get("thing_classes", None) if metadata is not None else None
    return names[index] if names is not None and 0 <= index < len(names) else str(index)


def gt_boxes_and_classes(dataset_dict: Dict):
    """(M, 4) XYXY boxes and (M,) classes of a dataset dict's annotations (crowd ones kept)."""
    annotations = dataset_dict.get("annotations", [])
    boxes = np.array(
        [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations],
        dtype=np.float64,
    ).reshape(-1, 4)
    classes = np.array([a["category_id"] for a in annotations], dtype=np.int64)
    return boxes, classes


def draw_ground_truth(
    image_rgb: np.ndarray,
    boxes: np.ndarray,
    classes: Sequence[int],
    *,
    metadata: Optional[Metadata] = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw ground-truth boxes (green) with their class names; returns the (scaled) RGB image."""
    visualizer = Visualizer(image_rgb, metadata=metadata, scale=scale)
    labels = [_class_name(metadata, int(c)) for c in classes]
    visualizer.overlay_instances(
        boxes=np.asarray(boxes).reshape(-1, 4),
        labels=labels,
        assigned_colors=[GT_COLOR] * len(labels),
    )
    return visualizer.get_output().get_image()


def draw_predictions(
    image_rgb: np.ndarray,
    prediction: Union[Instances, Dict],
    *,
    metadata: Optional[Metadata] = None,
    score_thresh: float = 0.3,
    gt_boxes: Optional[np.ndarray] = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw the detections whose score is at least ``score_thresh`` (red, "class score"), over
    dashed green outlines of ``gt_boxes`` if given; say so in the image when none passes.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image, in the coordinates of the predictions.
        prediction: ``Instances`` with ``pred_boxes``, ``scores``, ``pred_classes`` (or a model
            output dict holding it under "instances").
        metadata: gives the class names (``thing_classes``); None draws class indices.
        score_thresh: predictions below it are not drawn.
        gt_boxes: (M, 4) XYXY ground truth to outline for comparison, or None.
        scale: output pixels per image pixel.

    Returns:
        (H * scale, W * scale, 3) uint8 RGB image.
    """
    instances = _as_instances(prediction)
    instances = instances[instances.scores >= score_thresh]
    visualizer = Visualizer(image_rgb, metadata=metadata, scale=scale)
    for box in gt_boxes if gt_boxes is not None else []:
        visualizer.draw_box(box, alpha=0.9, edge_color=GT_COLOR, line_style="--")
    if len(instances):
        # Opaque boxes (overlay_instances blends them at alpha 0.5, which turns red over the
        # green outlines brown), the most confident drawn last, on top.
        order = instances.scores.argsort().tolist()
        boxes = instances.pred_boxes.tensor.numpy()
        for i in order:
            name = _class_name(metadata, int(instances.pred_classes[i]))
            visualizer.draw_box(boxes[i], alpha=1.0, edge_color=DETECTION_COLOR)
            visualizer.draw_text(
                f"{name} {float(instances.scores[i]):.2f}", (boxes[i][0], boxes[i][1]),
                color=DETECTION_COLOR, horizontal_alignment="left",
            )  # fmt: skip
    else:
        h, w = image_rgb.shape[:2]
        visualizer.draw_text(
            f"no detection with score >= {score_thresh:.2f}", (w / 2, h / 2),
            color=DETECTION_COLOR, horizontal_alignment="center",
        )  # fmt: skip
    return visualizer.get_output().get_image()


def _detections_title(prediction: Instances, score_thresh: float) -> str:
    num = int((prediction.scores >= score_thresh).sum()) if len(prediction) else 0
    if num:
        return f"Detections (score ≥ {score_thresh:.2f}): {num}"
    best = f"best score {prediction.scores.max():.2f}" if len(prediction) else "no box output"
    return f"Detections (score ≥ {score_thresh:.2f}): NONE ({best})"


def prediction_figure(
    image_rgb: np.ndarray,
    prediction: Union[Instances, Dict],
    dataset_dict: Optional[Dict] = None,
    *,
    metadata: Optional[Metadata] = None,
    score_thresh: float = 0.3,
    show_gt: bool = True,
    scale: Optional[float] = None,
    title: Optional[str] = None,
):
    """A figure of one image: a "Ground truth" panel (when ``show_gt`` and ``dataset_dict`` has
    annotations) next to a "Detections" panel in which the ground truth is outlined in dashed
    green under the detections. Panel titles give the counts and the score threshold, and say
    when no detection passes it.

    Returns:
        a matplotlib ``Figure``.
    """
    instances = _as_instances(prediction)
    h, w = image_rgb.shape[:2]
    scale = scale or default_scale(h, w)
    panels, titles = [], []
    gt_boxes = None
    if show_gt and dataset_dict is not None and "annotations" in dataset_dict:
        gt_boxes, gt_classes = gt_boxes_and_classes(dataset_dict)
        panels.append(draw_ground_truth(image_rgb, gt_boxes, gt_classes, metadata=metadata,
                                        scale=scale))  # fmt: skip
        titles.append(f"Ground truth: {len(gt_boxes)} objects")
    panels.append(draw_predictions(
        image_rgb, instances, metadata=metadata, score_thresh=score_thresh, gt_boxes=gt_boxes,
        scale=scale,
    ))  # fmt: skip
    titles.append(_detections_title(instances, score_thresh))
    fig, axes = panel_figure([p.shape[:2] for p in panels], titles, suptitle=title, legend=True)
    for ax, panel in zip(axes, panels):
        show_image(ax, panel)
    handles = [Patch(facecolor="none", edgecolor=GT_COLOR, label="ground truth"),
               Patch(facecolor="none", edgecolor=DETECTION_COLOR, label="detection (class score)")]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=8,
               borderaxespad=0.3)  # fmt: skip
    return fig


def save_prediction_images(
    *,
    predictions: Sequence[Union[Instances, Dict]],
    dataset_dicts: Sequence[Dict],
    metadata: Optional[Metadata],
    output_dir: str,
    score_thresh: float = 0.3,
    max_images: int = 8,
    show_gt: bool = True,
) -> List[str]:
    """Draw predictions on their images and write one PNG per image (see
    :func:`prediction_figure`). Logs a warning for each image where no detection passes
    ``score_thresh``.

    Args:
        predictions: per image, ``Instances`` (or a model output dict ``{"instances": ...}``) in
            the coordinates of the original image, as detectron2 models return them in eval mode.
        dataset_dicts: the dataset dicts of the same images, in the same order (``file_name`` is
            read; ``annotations`` are drawn when ``show_gt``).
        metadata: the dataset's metadata, for class names.
        output_dir: where to write; created if needed.
        score_thresh: predictions below it are not drawn.
        max_images: draw at most this many (the first ones).
        show_gt: draw a ground-truth panel and the ground-truth outlines under the detections.

    Returns:
        the paths of the written PNG files.
    """
    if len(predictions) != len(dataset_dicts):
        raise ValueError(
            f"Got {len(predictions)} predictions for {len(dataset_dicts)} images; "
            "they must correspond one to one."
        )
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for index, (prediction, dataset_dict) in enumerate(zip(predictions, dataset_dicts)):
        if index >= max_images:
            break
        instances = _as_instances(prediction)
        name = os.path.basename(dataset_dict["file_name"])
        if not bool((instances.scores >= score_thresh).any()):
            best = f"{instances.scores.max():.3f}" if len(instances) else "the model output no box"
            logger.warning(
                f"{name}: no detection has a score >= {score_thresh} (highest score: {best}); "
                "the picture shows none. Lower --score-thresh or check the weights."
            )
        image = read_image(dataset_dict["file_name"], format="RGB")
        fig = prediction_figure(image, instances, dataset_dict, metadata=metadata,
                                score_thresh=score_thresh, show_gt=show_gt, title=name)  # fmt: skip
        paths.append(save_figure(fig, picture_path(output_dir, index, name)))
    return paths
