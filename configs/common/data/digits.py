"""The built-in digits detection dataset (``ddod.data.digits``): 256x256 images, 10 classes.

Sized for a CPU: 600 training and 100 validation images, generated into
``$DDOD_DATASETS`` (else ``$DETECTRON2_DATASETS/ddod_digits``, else ``./datasets/ddod_digits``)
on first use, in a few seconds.

Images are used at their generated size. There is no flip augmentation: a mirrored digit is not
the same glyph, and the generator already randomises positions, sizes, colours and aspect ratios.
``num_workers=0`` because on a 2-core machine extra processes only compete with the model for the
cores. The training loader is ``build_resumable_train_loader`` (see ``coco.py``): ``--resume``
continues with the images an uninterrupted run would have seen.
"""

from omegaconf import OmegaConf

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
    dataset=L(get_detection_dataset_dicts_checked)(names="digits_det_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[],
        image_format="BGR",
        use_instance_mask=False,
    ),
    total_batch_size=8,
    num_workers=0,
    on_bad_image="error",  # or "skip": log unreadable images and use others
)

dataloader.test = L(build_test_loader)(
    dataset=L(get_detection_dataset_dicts_checked)(names="digits_det_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=0,
)

dataloader.evaluator = L(build_coco_evaluator)(
    dataset_name="${..test.dataset.names}",
)
