#!/usr/bin/env python
"""Run a trained detector on your own images, folders of images or videos.

Usage::

    python demo.py --config-file CONFIG --input IMAGE|FOLDER|VIDEO [IMAGE ...] \\
        [--output DIR] [--confidence-threshold 0.3] \\
        train.init_checkpoint=/path/to/model_final.pth [other config overrides]

For each input it writes, to ``--output`` (default ``./demo_output``):

* a picture with the detections drawn (class name and score) by Detectron2's ``Visualizer``:
  ``<name>.png`` for an image, ``<name>.mp4`` for a video;
* one ``detections.json`` for the whole run: per image (or video frame) its file, size and
  detections ``{"bbox": [x0, y0, x1, y1], "score", "category_id", "category_name"}`` in the
  input's pixel coordinates, with ``category_id`` the contiguous class index of the model.

``CONFIG`` is a LazyConfig (``configs/...py``) or a run's saved ``config.yaml`` (which also
knows the class names of a dataset given with ``train_net.py --train-json``). Images go through
the test-time resizing of ``dataloader.test.mapper``, as in evaluation. Without a GPU the model
runs on the CPU. An unreadable input is reported by name; the others are still processed and the
exit status is 1.
"""

import json
import logging
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from train_net import _import_ddod  # noqa: E402  (also sets the OpenMP spin count)

_import_ddod()  # before any detectron2 submodule (ddod.compat)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import detectron2.data.transforms as T  # noqa: E402
from detectron2.config import instantiate  # noqa: E402
from detectron2.data import detection_utils  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from detectron2.utils.visualizer import Visualizer  # noqa: E402

from ddod.utils.tool_setup import (  # noqa: E402
    add_config_overrides,
    build_model_with_weights,
    dataset_metadata,
    load_config,
    tool_argument_parser,
)

logger = logging.getLogger("ddod.demo")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
DEFAULT_THRESHOLD = 0.3


class UnreadableInputError(RuntimeError):
    """An input file that cannot be decoded as an image or a video."""


def parse_args(argv=None):
    parser = tool_argument_parser(__doc__)
    parser.add_argument("--input", required=True, nargs="+", metavar="PATH",
                        help="image files, folders of images, or video files")  # fmt: skip
    parser.add_argument("--output", default="demo_output", metavar="DIR",
                        help="where pictures and detections.json go (default: ./demo_output)")  # fmt: skip
    parser.add_argument("--confidence-threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"draw and report detections scoring at least this "
                        f"(default {DEFAULT_THRESHOLD})")  # fmt: skip
    add_config_overrides(parser)
    args = parser.parse_args(argv)
    # `--input a.png train.init_checkpoint=w.pth`: nargs="+" swallows the overrides that follow
    # the inputs; give them back (a key=value that is not an existing file is an override).
    overrides = [p for p in args.input if "=" in p and not os.path.exists(p)]
    args.input = [p for p in args.input if p not in overrides]
    args.opts = overrides + list(args.opts or [])
    if not args.input:
        parser.error("--input needs at least one image, folder or video.")
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error("--confidence-threshold must be in [0, 1].")
    return args


def expand_inputs(paths):
    """Input paths -> list of (kind, path), kind "image" or "video"; folders give their images
    (sorted, not recursive). Raises FileNotFoundError for a path that does not exist and
    ValueError for a folder without images."""
    items = []
    for path in paths:
        if os.path.isdir(path):
            images = sorted(
                os.path.join(path, f)
                for f in os.listdir(path)
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not images:
                raise ValueError(f"Input folder '{path}' holds no image ({', '.join(IMAGE_EXTENSIONS)}).")
            items += [("image", p) for p in images]
        elif os.path.isfile(path):
            kind = "video" if path.lower().endswith(VIDEO_EXTENSIONS) else "image"
            items.append((kind, path))
        else:
            raise FileNotFoundError(f"Input '{path}' does not exist.")
    return items


class Predictor:
    """A detector with its weights, test-time resizing and input format, run on one BGR image.

    The LazyConfig counterpart of detectron2's ``DefaultPredictor`` (which reads yacs keys).
    """

    def __init__(self, cfg):
        self.model, self.checkpoint = build_model_with_weights(cfg)
        self.input_format = getattr(self.model, "input_format", "BGR")
        mapper = cfg.dataloader.test.get("mapper", {}) if "dataloader" in cfg else {}
        self.augmentations = T.AugmentationList(instantiate(mapper.get("augmentations", [])) or [])

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray):
        """(H, W, 3) uint8 BGR -> Instances in the image's own pixel coordinates."""
        image = image_bgr[:, :, ::-1] if self.input_format == "RGB" else image_bgr
        height, width = image.shape[:2]
        aug_input = T.AugInput(np.ascontiguousarray(image))
        self.augmentations(aug_input)
        tensor = torch.as_tensor(aug_input.image.astype("float32").transpose(2, 0, 1))
        outputs = self.model([{"image": tensor, "height": height, "width": width}])
        return outputs[0]["instances"].to("cpu")


def detections_to_json(instances, threshold: float, class_names):
    keep = instances.scores >= threshold
    boxes = instances.pred_boxes.tensor[keep].tolist()
    scores = instances.scores[keep].tolist()
    classes = instances.pred_classes[keep].tolist()
    return [
        {
            "bbox": [round(v, 2) for v in box],
            "score": round(score, 4),
            "category_id": int(c),
            "category_name": class_names[c] if c < len(class_names) else str(c),
        }
        for box, score, c in zip(boxes, scores, classes)
    ]


def draw(image_bgr: np.ndarray, instances, threshold: float, metadata) -> np.ndarray:
    """The detections at or above ``threshold`` drawn on the image; returns BGR."""
    kept = instances[instances.scores >= threshold]
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata=metadata)
    drawn = visualizer.draw_instance_predictions(kept).get_image()
    if len(kept) == 0:
        drawn = Visualizer(drawn, metadata=metadata).draw_text(
            f"no detection >= {threshold:g}", (drawn.shape[1] // 2, 4),
            horizontal_alignment="center", color="w",
        ).get_image()  # fmt: skip
    return np.ascontiguousarray(drawn[:, :, ::-1])


def read_image(path: str) -> np.ndarray:
    try:
        return detection_utils.read_image(path, format="BGR")
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise UnreadableInputError(f"Cannot read image '{path}': {type(e).__name__}: {e}") from e


def run_image(predictor, path, args, metadata, class_names):
    import cv2

    image = read_image(path)
    instances = predictor(image)
    out_path = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
    cv2.imwrite(out_path, draw(image, instances, args.confidence_threshold, metadata))
    detections = detections_to_json(instances, args.confidence_threshold, class_names)
    logger.info(f"{path}: {len(detections)} detections >= {args.confidence_threshold:g} -> {out_path}")
    height, width = image.shape[:2]
    return [{"file_name": path, "height": height, "width": width, "detections": detections}]


def run_video(predictor, path, args, metadata, class_names):
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise UnreadableInputError(f"Cannot open video '{path}' (OpenCV could not decode it).")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    out_path = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".mp4")
    writer, records, frame_index = None, [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            instances = predictor(frame)
            drawn = draw(frame, instances, args.confidence_threshold, metadata)
            if writer is None:
                size = (drawn.shape[1], drawn.shape[0])
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            writer.write(drawn)
            records.append({
                "file_name": path, "frame": frame_index,
                "height": frame.shape[0], "width": frame.shape[1],
                "detections": detections_to_json(instances, args.confidence_threshold, class_names),
            })  # fmt: skip
            frame_index += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frame_index == 0:
        raise UnreadableInputError(f"Video '{path}' has no frame that OpenCV can decode.")
    logger.info(f"{path}: {frame_index} frames -> {out_path}")
    return records


def main(args) -> int:
    for name in ("ddod", "detectron2"):
        if not logging.getLogger(name).handlers:  # main() may run more than once in a process
            setup_logger(name=name)
    cfg = load_config(args.config_file, args.opts)
    if str(cfg.train.get("device", "cuda")).startswith("cuda") and not torch.cuda.is_available():
        logger.info("No GPU here: running on the CPU.")
        cfg.train.device = "cpu"
    items = expand_inputs(args.input)
    metadata = dataset_metadata(cfg.dataloader.test.dataset) if "dataloader" in cfg else None
    class_names = list(getattr(metadata, "thing_classes", None) or [])
    predictor = Predictor(cfg)
    os.makedirs(args.output, exist_ok=True)

    records, failures = [], []
    for kind, path in items:
        try:
            run = run_video if kind == "video" else run_image
            records += run(predictor, path, args, metadata, class_names)
        except UnreadableInputError as e:
            logger.error(str(e))
            failures.append(path)
    json_path = os.path.join(args.output, "detections.json")
    with open(json_path, "w") as f:
        json.dump(
            {
                "config_file": args.config_file,
                "checkpoint": predictor.checkpoint,
                "confidence_threshold": args.confidence_threshold,
                "class_names": class_names,
                "images": records,
            },
            f,
            indent=1,
        )
    logger.info(f"Detections of {len(records)} images/frames written to {json_path}.")
    if failures:
        logger.error(f"{len(failures)} input(s) could not be read: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
