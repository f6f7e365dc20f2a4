"""COCO 2017 detection data for DDOD's 1x schedule (single-scale training, short side 800).

Same structure as detectron2's ``configs/common/data/coco.py``, with three differences:
* the datasets are loaded with ``get_detection_dataset_dicts_checked``, which fails early with the
  missing path and the expected ``$DETECTRON2_DATASETS/coco/...`` layout when COCO is not there;
* training uses one scale (short side 800, long side at most 1333), as DDOD's 1x recipe does,
  instead of detectron2's multi-scale 640-800;
* no instance masks are loaded, and the evaluator is ``build_coco_evaluator`` (box AP; it picks
  ``use_fast_impl`` according to whether detectron2's compiled ops exist);
* the training loader is ``build_resumable_train_loader``: same arguments as detectron2's
  ``build_detection_train_loader``, but the images (and the random flips) of every iteration are
  a function of (seed, iteration), so ``--resume`` continues exactly where the run stopped.
  ``on_bad_image="skip"`` skips unreadable image files with a warning instead of failing;
* the test loader is ``build_test_loader`` (detectron2's, with an unreadable image reported by
  file name instead of a bare ``OSError``);
* boxes that cannot be trained on (zero-size, inverted, non-finite, entirely outside the image)
  are dropped when the dataset is loaded, with a warning that counts them.
"""

from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper

from ddod.data import (
    build_resumable_train_loader,
    build_test_loader,
    get_detection_dataset_dicts_checked,
)
from ddod.evaluation import build_coco_evaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_resumable_train_loader)(
    dataset=L(get_detection_dataset_dicts_checked)(names="coco_2017_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="BGR",
        use_instance_mask=False,
    ),
    total_batch_size=16,
    num_workers=4,
    on_bad_image="error",  # or "skip": log unreadable images and use others
)

dataloader.test = L(build_test_loader)(
    dataset=L(get_detection_dataset_dicts_checked)(names="coco_2017_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[
            L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333),
        ],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=4,
)

dataloader.evaluator = L(build_coco_evaluator)(
    dataset_name="${..test.dataset.names}",
)
