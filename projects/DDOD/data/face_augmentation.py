"""TinaFace-style square random crop for face detection, and a mapper that lets augmentations
see the boxes.

TinaFace (Zhu et al., 2020), whose recipe DDOD-Face follows, crops a random square whose side is
a random fraction (0.3 .. 1.0) of the image's short side, keeps the faces whose centre falls in
the square, then resizes the square to 640 x 640. Small crops zoom in on small faces, the regime
that WIDER FACE's hard subset is made of.

detectron2's ``DatasetMapper`` gives its augmentations the image only, so a crop cannot look at
the faces. :class:`BoxAwareDatasetMapper` passes the (non-crowd) boxes too (``T.AugInput(image,
boxes=...)``) and, optionally, drops the annotations whose box centre leaves the augmented image
(TinaFace's rule) instead of keeping a clipped sliver of them.
"""
import copy
from typing import Sequence

import numpy as np
import torch

import detectron2.data.transforms as T
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.structures import BoxMode

__all__ = ["RandomSquareCrop", "BoxAwareDatasetMapper"]


class RandomSquareCrop(T.Augmentation):
    """Crop a random square of side ``scale x min(H, W)``, ``scale`` drawn from ``crop_choice``,
    containing the centre of at least one box.

    Up to ``max_attempts`` random positions and scales are tried; if none contains a box centre,
    the square of the short side around the first box's centre is used (the square then always
    contains it). An image without boxes gets a random square.
    """

    def __init__(self, crop_choice: Sequence[float] = (0.3, 0.45, 0.6, 0.8, 1.0), max_attempts=50):
        """
        Args:
            crop_choice: fractions of the image's short side, each in (0, 1].
            max_attempts: random squares tried before the fallback.
        """
        super().__init__()
        crop_choice = tuple(float(c) for c in crop_choice)
        if not crop_choice or not all(0 < c <= 1 for c in crop_choice):
            raise ValueError(f"crop_choice must be fractions in (0, 1], got {crop_choice}.")
        self._init(locals())

    def get_transform(self, image, boxes):
        """image: (H, W, C); boxes: (B, 4) XYXY absolute (possibly empty)."""
        h, w = image.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        for _ in range(self.max_attempts):
            side = max(1, int(np.random.choice(self.crop_choice) * min(h, w)))
            x0 = np.random.randint(0, w - side + 1)
            y0 = np.random.randint(0, h - side + 1)
            inside = (
                (centres[:, 0] > x0)
                & (centres[:, 0] < x0 + side)
                & (centres[:, 1] > y0)
                & (centres[:, 1] < y0 + side)
            )
            if inside.any() or not len(boxes):
                return T.CropTransform(x0, y0, side, side)
        side = min(h, w)
        cx, cy = centres[0]
        x0 = int(np.clip(cx - side / 2, 0, w - side))
        y0 = int(np.clip(cy - side / 2, 0, h - side))
        return T.CropTransform(x0, y0, side, side)


class BoxAwareDatasetMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` whose augmentations also receive ``boxes`` (the image's
    non-crowd boxes, XYXY), for box-dependent crops such as :class:`RandomSquareCrop`.

    Semantic segmentation and precomputed proposals are not supported (detection only). With
    ``drop_boxes_with_centre_outside`` an annotation whose box centre, after the augmentations,
    lies outside the image is removed before the boxes are clipped.
    """

    def __init__(self, *args, drop_boxes_with_centre_outside: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop_boxes_with_centre_outside = drop_boxes_with_centre_outside

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        annotations = dataset_dict.get("annotations", [])
        boxes = np.array(
            [
                BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                for a in annotations
                if a.get("iscrowd", 0) == 0
            ],
            dtype=np.float64,
        ).reshape(-1, 4)
        aug_input = T.AugInput(image, boxes=boxes)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            if self.drop_boxes_with_centre_outside:
                dataset_dict["annotations"] = [
                    a for a in annotations if self._centre_inside(a, transforms, image_shape)
                ]
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

    @staticmethod
    def _centre_inside(annotation, transforms, image_shape) -> bool:
        x0, y0, x1, y1 = BoxMode.convert(
            annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS
        )
        (cx, cy), = transforms.apply_coords(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))
        h, w = image_shape
        return 0 <= cx < w and 0 <= cy < h
