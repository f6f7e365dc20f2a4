#!/usr/bin/env python
"""Draw which anchors a detector trains as classification and as regression positives.

For each image: one panel per FPN level with the ground truth and the anchor (or point) centres
that the model's classification assignment, its regression assignment, or both, make positive,
and the per-level counts. The labels come from the model's own ``label_anchors`` on a training
forward (ddod/utils/assignments.py), so the picture is right for every assigner of the project
(ATSS, cost-based ATSS, MaxIoU, FCOS points, ...). Cost-based assigners score the model's
predictions: give trained weights with ``train.init_checkpoint=...`` to see the assignment the
trained model makes; without them the predictions are those of the initial weights.

Usage::

    python tools/visualize_assignments.py --config-file CONFIG.py [--images 4] [--output DIR] \\
        [--split train|test] [--boxes] train.init_checkpoint=model_final.pth [overrides]

Images go through the training data mapper (the augmentations of training included) and are
drawn as the model sees them. PNGs go to ``<train.output_dir>/assignments/`` unless ``--output``.
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
from detectron2.utils.logger import setup_logger  # noqa: E402

from ddod.utils import tool_setup  # noqa: E402
from ddod.utils.assignment_view import assignment_figure  # noqa: E402
from ddod.utils.assignments import record_assignments  # noqa: E402
from ddod.utils.panels import picture_path, save_figure  # noqa: E402

logger = logging.getLogger("ddod.visualize_assignments")
# Panels are scaled so that the longer image side is about this many pixels.
PANEL_PX = 320


def parse_args(argv=None):
    parser = tool_setup.tool_argument_parser(__doc__)
    parser.add_argument("--images", type=int, default=4, help="how many images to draw")
    parser.add_argument(
        "--output", default=None, help="output directory (default <train.output_dir>/assignments)"
    )
    parser.add_argument(
        "--split", choices=("train", "test"), default="train",
        help="dataset of dataloader.train or dataloader.test (both through the training mapper)",
    )  # fmt: skip
    parser.add_argument("--boxes", action="store_true", help="also outline the positive anchors")
    parser.add_argument(
        "--scale", type=float, default=None,
        help=f"figure pixels per image pixel (default: longer side ~{PANEL_PX} px)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the random augmentations")
    return tool_setup.add_config_overrides(parser).parse_args(argv)


def describe_assigners(model) -> str:
    """E.g. "cls: CostATSSAssigner(alpha=0.8, topk=9) · reg: CostATSSAssigner(alpha=0.5, ...)"."""
    cls = getattr(model, "cls_assigner", None)
    reg = getattr(model, "reg_assigner", None)
    if cls is None:
        return type(model).__name__
    return f"cls: {cls!r} · reg: {reg!r}" if reg is not None else f"cls & reg: {cls!r}"


def _uses_predictions(model) -> bool:
    assigners = [getattr(model, n, None) for n in ("cls_assigner", "reg_assigner")]
    return any(getattr(a, "uses_predictions", False) for a in assigners if a is not None)


def main(args) -> list:
    """Draw the assignment of the first ``args.images`` images; return the written paths."""
    cfg = tool_setup.load_config(args.config_file, args.opts)
    tool_setup.seed_all(args.seed)
    model, checkpoint = tool_setup.build_model_with_weights(cfg)
    dataset_cfg = cfg.dataloader[args.split].dataset
    dataset = instantiate(dataset_cfg)
    # The training mapper for both splits: the test mapper drops the annotations.
    mapper = instantiate(cfg.dataloader.train.mapper)
    class_names = tool_setup.dataset_metadata(dataset_cfg).get("thing_classes", None)
    output_dir = args.output or os.path.join(cfg.train.output_dir, "assignments")

    weights = os.path.basename(checkpoint) if checkpoint else "untrained weights"
    source = f"cost on the predictions of {weights}" if _uses_predictions(model) else weights
    paths = []
    for index in range(min(args.images, len(dataset))):
        dataset_dict = dataset[index]
        item = mapper(copy.deepcopy(dataset_dict))
        if item is None:  # a mapper may drop an image (e.g. nothing left after cropping)
            logger.warning(f"The mapper dropped {dataset_dict['file_name']}; skipped.")
            continue
        (assignment,) = record_assignments(model, [item])
        name = os.path.basename(dataset_dict["file_name"])
        counts = assignment.level_counts()
        logger.info(
            f"{name}: {len(assignment.gt_boxes)} objects; positives per level (cls/reg): "
            + ", ".join(f"{lvl} {c['cls']}/{c['reg']}" for lvl, c in counts.items())
        )
        h, w = assignment.image.shape[:2]
        scale = args.scale or float(np.clip(PANEL_PX / max(h, w), 0.25, 2.0))
        title = (
            f"{name} as the model sees it ({w}x{h}): {len(assignment.gt_boxes)} objects, "
            f"{int(assignment.positives('cls').sum())} cls / "
            f"{int(assignment.positives('reg').sum())} reg positive anchors\n"
            f"{describe_assigners(model)} — {source}"
        )
        fig, _ = assignment_figure(
            assignment, class_names=class_names, title=title, scale=scale, draw_boxes=args.boxes
        )
        paths.append(save_figure(fig, picture_path(output_dir, index, name)))
    print(f"Saved {len(paths)} assignment pictures to {output_dir}")
    return paths


if __name__ == "__main__":
    setup_logger(name="ddod")
    main(parse_args())
