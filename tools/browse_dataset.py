#!/usr/bin/env python
"""Draw a dataset's ground truth before and after the data pipeline (augmentations included).

Each PNG shows one image twice: as stored, with its annotations, and as the model receives it
from the config's data mapper (resized, flipped, cropped, ... by the split's augmentations),
with the boxes the mapper kept. Random augmentations are drawn with ``--seed``; draw the same
images with other seeds to see their range.

Usage::

    python tools/browse_dataset.py --config-file CONFIG.py [--split train|test] \\
        [--num-images 8] [--output DIR] [--seed 0] [overrides]

PNGs go to ``<train.output_dir>/dataset_<split>/`` unless ``--output``.
"""

import copy
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_net import _import_ddod  # noqa: E402

_import_ddod()  # before any detectron2 submodule (ddod.compat)

import numpy as np  # noqa: E402
from detectron2.config import instantiate  # noqa: E402
from detectron2.data.detection_utils import convert_image_to_rgb, read_image  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from ddod.utils import tool_setup  # noqa: E402
from ddod.utils.panels import panel_figure, picture_path, save_figure, show_image  # noqa: E402
from ddod.utils.visualize import (  # noqa: E402
    default_scale,
    draw_ground_truth,
    gt_boxes_and_classes,
)

logger = logging.getLogger("ddod.browse_dataset")


def parse_args(argv=None):
    parser = tool_setup.tool_argument_parser(__doc__)
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--num-images", type=int, default=8, help="how many images to draw")
    parser.add_argument(
        "--output", help="output directory (default <train.output_dir>/dataset_<split>)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random augmentations")
    return tool_setup.add_config_overrides(parser).parse_args(argv)


def mapper_keeping_annotations(mapper):
    """detectron2's DatasetMapper drops the annotations at test time (``is_train=False``); a copy
    that keeps them, with the same augmentations, shows where the test boxes land."""
    if getattr(mapper, "is_train", True) is False:
        mapper = copy.copy(mapper)
        mapper.is_train = True
    return mapper


def main(args) -> list:
    """Draw the first ``args.num_images`` images of the split; return the written paths."""
    cfg = tool_setup.load_config(args.config_file, args.opts)
    tool_setup.seed_all(args.seed)
    loader_cfg = cfg.dataloader[args.split]
    dataset = instantiate(loader_cfg.dataset)
    mapper = mapper_keeping_annotations(instantiate(loader_cfg.mapper))
    metadata = tool_setup.dataset_metadata(loader_cfg.dataset)
    image_format = getattr(mapper, "image_format", "BGR")
    augs = getattr(getattr(mapper, "augmentations", None), "augs", None)
    augmentations = ", ".join(str(a) for a in augs) if augs else "none"
    output_dir = args.output or os.path.join(cfg.train.output_dir, f"dataset_{args.split}")

    paths = []
    for index in range(min(args.num_images, len(dataset))):
        dataset_dict = dataset[index]
        name = os.path.basename(dataset_dict["file_name"])
        item = mapper(copy.deepcopy(dataset_dict))
        if item is None:
            logger.warning(f"The mapper dropped {name}; skipped.")
            continue
        original = read_image(dataset_dict["file_name"], format="RGB")
        boxes, classes = gt_boxes_and_classes(dataset_dict)
        mapped = convert_image_to_rgb(item["image"].permute(1, 2, 0).numpy(), image_format)
        mapped = np.ascontiguousarray(mapped.clip(0, 255).astype(np.uint8))
        instances = item.get("instances")
        mapped_boxes, mapped_classes = np.zeros((0, 4)), []
        if instances is not None:
            mapped_boxes = instances.gt_boxes.tensor.numpy()
            mapped_classes = instances.gt_classes.tolist()
        h, w = original.shape[:2]
        # Each panel at a readable size; the titles give the real sizes (a 3x resize drawn to
        # scale would make the second panel huge).
        panels = [
            draw_ground_truth(original, boxes, classes, metadata=metadata,
                              scale=default_scale(h, w)),
            draw_ground_truth(mapped, mapped_boxes, mapped_classes, metadata=metadata,
                              scale=default_scale(*mapped.shape[:2])),
        ]  # fmt: skip
        titles = [
            f"As stored: {w}x{h}, {len(boxes)} objects",
            f"Model input ({args.split} pipeline): {mapped.shape[1]}x{mapped.shape[0]}, "
            f"{len(mapped_boxes)} objects",
        ]
        fig, axes = panel_figure([p.shape[:2] for p in panels], titles,
                                 suptitle=f"{name}\naugmentations: {augmentations}")  # fmt: skip
        for ax, panel in zip(axes, panels):
            show_image(ax, panel)
        paths.append(save_figure(fig, picture_path(output_dir, index, name)))
    print(f"Saved {len(paths)} dataset pictures to {output_dir}")
    return paths


if __name__ == "__main__":
    setup_logger(name="ddod")
    main(parse_args())
