#!/usr/bin/env python
"""Draw a trained detector's predictions next to the ground truth on the first test images.

Usage::

    python tools/visualize_predictions.py --config-file CONFIG.py \\
        [--num-images 8] [--output DIR] [--score-thresh 0.3] [--no-gt] \\
        train.init_checkpoint=/path/to/model_final.pth [other config overrides]

Each PNG has a "Ground truth" panel (green boxes, class names) and a "Detections" panel
(red boxes with class and score, over dashed green outlines of the ground truth); ``--no-gt``
draws the detections alone. When no detection of an image reaches ``--score-thresh``, its
panel title and the image say so, and a warning names the image and its highest score.

It reads these config keys:

* ``model``: the detector, built with ``instantiate``; in eval mode it must return
  ``[{"instances": Instances(pred_boxes, scores, pred_classes)}]``;
* ``train.init_checkpoint``: the weights, loaded with ``DetectionCheckpointer``;
* ``train.device``: where the model runs (default "cuda"; pass ``train.device=cpu`` on a CPU);
* ``train.output_dir``: PNG files go to ``<train.output_dir>/predictions/`` unless ``--output``;
* ``dataloader.test.dataset`` and ``dataloader.test.mapper``: the images and their preprocessing.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_net import _import_ddod  # noqa: E402

_import_ddod()  # before any detectron2 submodule (ddod.compat)

import torch  # noqa: E402
from detectron2.config import instantiate  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from ddod.utils import tool_setup  # noqa: E402
from ddod.utils.visualize import save_prediction_images  # noqa: E402

logger = logging.getLogger("ddod.visualize_predictions")


def parse_args(argv=None):
    parser = tool_setup.tool_argument_parser(__doc__)
    parser.add_argument("--num-images", type=int, default=8, help="how many images to draw")
    parser.add_argument(
        "--output", default=None, help="output directory (default <train.output_dir>/predictions)"
    )
    parser.add_argument(
        "--score-thresh", type=float, default=0.3, help="draw predictions at least this confident"
    )
    gt = parser.add_mutually_exclusive_group()
    gt.add_argument(
        "--no-gt", dest="show_gt", action="store_false",
        help="draw the detections only (default: a ground-truth panel and GT outlines too)",
    )  # fmt: skip
    # the default since the pictures label their panels; kept so that older commands still run
    gt.add_argument("--show-gt", dest="show_gt", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(show_gt=True)
    return tool_setup.add_config_overrides(parser).parse_args(argv)


def main(args) -> list:
    """Run the model on the first ``args.num_images`` test images; return the written paths."""
    cfg = tool_setup.load_config(args.config_file, args.opts)
    model, _ = tool_setup.build_model_with_weights(cfg)
    dataset = instantiate(cfg.dataloader.test.dataset)
    mapper = instantiate(cfg.dataloader.test.mapper)
    dataset_dicts = [dataset[i] for i in range(min(args.num_images, len(dataset)))]
    predictions = []
    with torch.no_grad():
        for dataset_dict in dataset_dicts:
            # Batches of one: the mapper's output is the model's input format, and detectron2
            # models rescale their predictions to the original image size given in it.
            predictions.append(model([mapper(dataset_dict)])[0]["instances"].to("cpu"))

    output_dir = args.output or os.path.join(cfg.train.output_dir, "predictions")
    paths = save_prediction_images(
        predictions=predictions,
        dataset_dicts=dataset_dicts,
        metadata=tool_setup.dataset_metadata(cfg.dataloader.test.dataset),
        output_dir=output_dir,
        score_thresh=args.score_thresh,
        max_images=args.num_images,
        show_gt=args.show_gt,
    )
    empty = sum(int((p.scores >= args.score_thresh).sum()) == 0 for p in predictions[: len(paths)])
    if empty:
        logger.warning(
            f"{empty} of {len(paths)} pictures show no detection: none reached "
            f"--score-thresh {args.score_thresh}."
        )
    print(f"Saved {len(paths)} prediction images to {output_dir}")
    return paths


if __name__ == "__main__":
    setup_logger(name="ddod")
    setup_logger(name="detectron2")
    main(parse_args())
