"""WIDER FACE data for DDOD-Face (TinaFace's pipeline; ddod.data.widerface for the layout).

Training (``widerface_train``; invalid faces and faces under 2 px are flagged crowd and not
trained on):
* ``RandomSquareCrop``: a square of 0.3 / 0.45 / 0.6 / 0.8 / 1.0 x the short side holding at least
  one face centre; faces whose centre leaves the crop are dropped (``BoxAwareDatasetMapper``);
* resize the square to 640 x 640, horizontal flip;
* photometric jitter: brightness x[0.875, 1.125], contrast and saturation x[0.5, 1.5]
  (TinaFace's PhotoMetricDistortion also shifts the hue; detectron2 has no hue augmentation).

Testing (``widerface_val``): single scale, short side 1100, long side at most 1650 (TinaFace's
test scale; the paper's 97.0 / 96.4 / 93.5 may use TinaFace's multi-scale flip testing, which is
not implemented here). Evaluation: the official protocol (``WiderFaceEvaluator``), which needs
the kit's ``.mat`` files under ``$DETECTRON2_DATASETS/widerface/eval_tools/ground_truth``.
"""

from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper

from ddod.data import (
    BoxAwareDatasetMapper,
    RandomSquareCrop,
    build_resumable_train_loader,
    build_test_loader,
    get_detection_dataset_dicts_checked,
)
from ddod.evaluation import WiderFaceEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_resumable_train_loader)(
    dataset=L(get_detection_dataset_dicts_checked)(names="widerface_train"),
    mapper=L(BoxAwareDatasetMapper)(
        is_train=True,
        augmentations=[
            L(RandomSquareCrop)(crop_choice=[0.3, 0.45, 0.6, 0.8, 1.0]),
            L(T.Resize)(shape=(640, 640)),
            L(T.RandomFlip)(horizontal=True),
            L(T.RandomBrightness)(intensity_min=0.875, intensity_max=1.125),
            L(T.RandomContrast)(intensity_min=0.5, intensity_max=1.5),
            L(T.RandomSaturation)(intensity_min=0.5, intensity_max=1.5),
        ],
        image_format="BGR",
        use_instance_mask=False,
        drop_boxes_with_centre_outside=True,
    ),
    total_batch_size=24,
    num_workers=4,
    on_bad_image="error",
)

dataloader.test = L(build_test_loader)(
    dataset=L(get_detection_dataset_dicts_checked)(names="widerface_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=1100, max_size=1650)],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=4,
)

dataloader.evaluator = L(WiderFaceEvaluator)(dataset_name="${..test.dataset.names}")
