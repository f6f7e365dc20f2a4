#!/usr/bin/env python
"""Draw a trained detector's predictions on the first images of its test dataset.

Usage::

    python tools/visualize_predictions.py --config-file CONFIG.py \\
        [--num-images 8] [--output DIR] [--score-thresh 0.3] [--show-gt] \\
        train.init_checkpoint=/path/to/model_final.pth [other config overrides]

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

import torch

import ddod  # noqa: F401  (patches detectron2 v0.6 on a modern stack, registers datasets/models)
from detectron2.config import LazyConfig, instantiate
from detectron2.data import Metadata, MetadataCatalog
from detectron2.utils.logger import setup_logger

from ddod.engine import DetectionCheckpointer, apply_overrides
from ddod.utils.visualize import save_prediction_images

logger = logging.getLogger("ddod.visualize_predictions")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig file")
    parser.add_argument("--num-images", type=int, default=8, help="how many images to draw")
    parser.add_argument(
        "--output", default=None, help="output directory (default <train.output_dir>/predictions)"
    )
    parser.add_argument(
        "--score-thresh", type=float, default=0.3, help="draw predictions at least this confident"
    )
    parser.add_argument(
        "--show-gt", action="store_true", help="draw the ground truth next to the predictions"
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="config overrides as path.key=value, e.g. train.init_checkpoint=model_final.pth",
    )
    return parser.parse_args(argv)


def _dataset_metadata(dataset_cfg) -> Metadata:
    names = dataset_cfg.get("names") if hasattr(dataset_cfg, "get") else None
    if isinstance(names, str):
        return MetadataCatalog.get(names)
    if names:
        return MetadataCatalog.get(names[0])
    return Metadata()  # a custom dataset config: class indices instead of names


def main(args) -> list:
    """Run the model on the first ``args.num_images`` test images; return the written paths."""
    cfg = LazyConfig.load(args.config_file)
    cfg = apply_overrides(cfg, args.opts)  # an unknown key is an error that names it

    device = cfg.train.get("device", "cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"train.device={device} but CUDA is not available; add train.device=cpu")

    model = instantiate(cfg.model)
    model.to(device)
    model.eval()
    checkpoint = cfg.train.get("init_checkpoint", "")
    if checkpoint:
        DetectionCheckpointer(model).load(checkpoint)
    else:
        logger.warning("train.init_checkpoint is empty: drawing an untrained model's predictions.")

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
        metadata=_dataset_metadata(cfg.dataloader.test.dataset),
        output_dir=output_dir,
        score_thresh=args.score_thresh,
        max_images=args.num_images,
        show_gt=args.show_gt,
    )
    print(f"Saved {len(paths)} prediction images to {output_dir}")
    return paths


if __name__ == "__main__":
    setup_logger(name="ddod")
    setup_logger(name="detectron2")
    main(parse_args())
