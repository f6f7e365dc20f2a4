"""Draw a detector's predictions (and optionally the ground truth) into PNG files."""

import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from PIL import Image

from detectron2.data import Metadata
from detectron2.data.detection_utils import read_image
from detectron2.structures import Instances
from detectron2.utils.visualizer import Visualizer

__all__ = ["draw_predictions", "save_prediction_images"]


def _as_instances(prediction: Union[Instances, Dict]) -> Instances:
    """Accept a model output dict (``{"instances": ...}``) or an ``Instances``; move to CPU."""
    if isinstance(prediction, dict):
        if "instances" not in prediction:
            raise ValueError(
                f"Expected a model output with an 'instances' key, got keys {sorted(prediction)}"
            )
        prediction = prediction["instances"]
    return prediction.to("cpu")


def draw_predictions(
    image_rgb: np.ndarray,
    prediction: Union[Instances, Dict],
    *,
    metadata: Optional[Metadata] = None,
    score_thresh: float = 0.3,
) -> np.ndarray:
    """Draw the predicted boxes, class names and scores whose score is at least ``score_thresh``.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image, in the coordinates of the predictions.
        prediction: ``Instances`` with ``pred_boxes``, ``scores``, ``pred_classes`` (or a model
            output dict holding it under "instances").
        metadata: gives the class names (``thing_classes``); None draws class indices.
        score_thresh: predictions below it are not drawn.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    instances = _as_instances(prediction)
    instances = instances[instances.scores >= score_thresh]
    visualizer = Visualizer(image_rgb, metadata=metadata)
    return visualizer.draw_instance_predictions(instances).get_image()


def save_prediction_images(
    *,
    predictions: Sequence[Union[Instances, Dict]],
    dataset_dicts: Sequence[Dict],
    metadata: Optional[Metadata],
    output_dir: str,
    score_thresh: float = 0.3,
    max_images: int = 8,
    show_gt: bool = False,
) -> List[str]:
    """Draw predictions on their images and write one PNG per image.

    Args:
        predictions: per image, ``Instances`` (or a model output dict ``{"instances": ...}``) in
            the coordinates of the original image, as detectron2 models return them in eval mode.
        dataset_dicts: the dataset dicts of the same images, in the same order (``file_name`` is
            read; ``annotations`` are drawn when ``show_gt``).
        metadata: the dataset's metadata, for class names.
        output_dir: where to write; created if needed.
        score_thresh: predictions below it are not drawn.
        max_images: draw at most this many (the first ones).
        show_gt: if True, each PNG shows the ground truth on the left and the predictions on the
            right (twice the image width); otherwise the predictions only, at the image size.

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
        image = read_image(dataset_dict["file_name"], format="RGB")
        drawn = draw_predictions(image, prediction, metadata=metadata, score_thresh=score_thresh)
        if show_gt:
            gt = Visualizer(image, metadata=metadata).draw_dataset_dict(dataset_dict).get_image()
            drawn = np.concatenate([gt, drawn], axis=1)
        stem = os.path.splitext(os.path.basename(dataset_dict["file_name"]))[0]
        path = os.path.join(output_dir, f"{index:04d}_{stem}.png")
        # Visualizer returns RGB; PIL writes it as is (cv2 would expect BGR).
        Image.fromarray(drawn).save(path)
        paths.append(path)
    return paths
