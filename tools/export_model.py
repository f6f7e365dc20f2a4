#!/usr/bin/env python
"""Export a detector to TorchScript or ONNX and check the exported file against the eager model.

Usage::

    python tools/export_model.py --config-file CONFIG.py --format {torchscript,onnx} \\
        --output DIR [--size H W] [--num-check-images 2] [--opset 19] \\
        train.init_checkpoint=/path/to/model_final.pth [other config overrides]

Writes ``DIR/model.ts`` or ``DIR/model.onnx`` and ``DIR/export.json`` (input size and format).
The graph takes one (3, H, W) image in the model's input format (e.g. BGR, 0-255; uint8) of
the exported size and returns ``boxes`` (D, 4), ``scores`` (D,), ``classes`` (D,); normalisation,
padding, decoding, thresholds and NMS are inside it, deformable convs are ONNX ``DeformConv``
(opset >= 19). ``--size`` defaults to the size of the first test image after the test mapper;
other images are letterboxed to it (``ddod.export.letterbox``).

The check: the first ``--num-check-images`` test images (random images when the test set cannot
be loaded) go through the eager model (its ordinary forward, on the CPU) and through the
exported file (TorchScript in torch, ONNX in onnxruntime's CPU provider); the tool fails unless
the detections are equal within the tolerances of ``ddod.export`` (boxes 0.01 px, scores 1e-4,
classes exact). Models that cannot be exported (e.g. with Soft-NMS as post-processing) stop
with an error naming the part and the reason.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_net import _import_ddod  # noqa: E402

_import_ddod()  # before any detectron2 submodule (ddod.compat)

import torch  # noqa: E402
from detectron2.config import instantiate  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from ddod.export import (  # noqa: E402
    FORMATS,
    ONNX_OPSET,
    NotExportableError,
    compare_detections,
    eager_detections,
    export_model,
    letterbox,
    load_exported,
)
from ddod.utils import tool_setup  # noqa: E402

logger = logging.getLogger("ddod.export_model")


def parse_args(argv=None):
    parser = tool_setup.tool_argument_parser(__doc__)
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to export to")
    parser.add_argument("--output", required=True, help="directory for the exported file")
    parser.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), default=None,
        help="input size of the graph (default: the first test image's)",
    )  # fmt: skip
    parser.add_argument(
        "--num-check-images", type=int, default=2,
        help="test images to compare eager and exported detections on (0: no check)",
    )  # fmt: skip
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help="ONNX opset (>= 19)")
    return tool_setup.add_config_overrides(parser).parse_args(argv)


def sample_images(cfg, num: int, size):
    """Up to ``num`` test images after the test mapper ((3, h, w) tensors); random uint8 images
    of ``size`` (default 800 x 1333) when the test set cannot be loaded."""
    try:
        dataset = instantiate(cfg.dataloader.test.dataset)
        mapper = instantiate(cfg.dataloader.test.mapper)
        return [mapper(dataset[i])["image"] for i in range(min(max(num, 1), len(dataset)))]
    except Exception as e:  # noqa: BLE001  (any reason: missing files, unregistered dataset)
        h, w = size or (800, 1333)
        logger.warning(f"Could not load the test set ({e}); checking on random images.")
        gen = torch.Generator().manual_seed(0)
        return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)] * max(num, 1)


def main(args) -> dict:
    """Export, then check; returns {"path", "checks": [compare_detections reports]}."""
    cfg = tool_setup.load_config(args.config_file, args.opts)
    cfg.train.device = "cpu"  # exported for the CPU; the check runs onnxruntime on the CPU
    model, _ = tool_setup.build_model_with_weights(cfg)
    images = sample_images(cfg, args.num_check_images, args.size)
    size = tuple(args.size) if args.size else tuple(images[0].shape[-2:])
    images = [letterbox(x, *size)[0] for x in images]
    try:
        path = export_model(model, images[0], args.format, args.output, opset=args.opset)
    except NotExportableError as e:
        raise SystemExit(f"Cannot export {args.config_file}: {e}") from e
    logger.info(f"Exported {args.format} for {size[0]}x{size[1]} images to {path}.")
    checks = []
    if args.num_check_images > 0:
        run = load_exported(path)
        for i, image in enumerate(images[: args.num_check_images]):
            report = compare_detections(eager_detections(model, image), run(image))
            logger.info(f"check image {i}: {report}")
            checks.append(report)
        if not all(r["equal"] for r in checks):
            raise SystemExit(f"The exported model's detections differ from the eager model's: {checks}")
        logger.info(f"Exported detections equal the eager model's on {len(checks)} image(s).")
    return {"path": path, "checks": checks}


if __name__ == "__main__":
    setup_logger(name="ddod")
    main(parse_args())
