"""Inputs for the label assigners alone: DDOD's real anchors for an image size and random
ground truth and predictions.

The anchors are those of ``configs/common/models/ddod.py`` (one square anchor of 8 x stride per
location on P3-P7, strides 8-128, offset 0) on the feature maps of an image padded to a multiple
of 128 (the FPN's size divisibility), exactly what the detector assigns over.

Run as a script, it compares the ATSS candidate selection paths on one image:

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.assigner --device cpu --size 800x1333

* dense: ``CostATSSAssigner`` without ``grid_sizes`` (every GT-anchor distance, chunked);
* grid: with ``grid_sizes`` (a few anchors around each GT centre, same result);
* pair: DDOD's two cost-ATSS calls (alpha 0.8 and 0.5) on the grid path, each selecting its own
  candidates, or sharing one ``select_candidates``.
"""
import argparse
import math
from typing import List, Tuple

import torch

import ddod  # noqa: F401  (before any detectron2 part: compat patches)
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform

from ddod.modeling import ATSSAssigner, CostATSSAssigner

from .models import random_gt_boxes

STRIDES = (8, 16, 32, 64, 128)
SIZE_DIVISIBILITY = 128


def grid_sizes(height: int, width: int) -> List[Tuple[int, int]]:
    """(H, W) of each level's feature map for one (height, width) image."""
    ph = math.ceil(height / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    pw = math.ceil(width / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    return [(math.ceil(ph / s), math.ceil(pw / s)) for s in STRIDES]


def ddod_anchors(height: int, width: int, device: torch.device) -> Tuple[torch.Tensor, List[int]]:
    """(R, 4) anchors of all levels and the number per level, for one (height, width) image."""
    generator = DefaultAnchorGenerator(
        sizes=[[8 * s] for s in STRIDES], aspect_ratios=[1.0], strides=list(STRIDES), offset=0.0
    ).to(device)
    features = [torch.empty(1, 1, h, w, device=device) for h, w in grid_sizes(height, width)]
    per_level = generator(features)
    return torch.cat([b.tensor for b in per_level]), [len(b) for b in per_level]


def assigner_inputs(
    height: int,
    width: int,
    num_gt: int,
    device: torch.device,
    *,
    num_classes: int = 80,
    seed: int = 0,
    with_grid_sizes: bool = True,
) -> dict:
    """Keyword arguments of one assigner call on one image.

    With ``with_grid_sizes`` they include the levels' ``grid_sizes``, as the detector passes them
    (ATSS assigners then select candidates around each GT centre only).

    Predictions: logits ~ N(-4, 1.5^2) (a detector a little way into training) and boxes decoded
    from deltas ~ N(0, 0.1^2) around the anchors, with DDOD's delta coder.
    """
    g = torch.Generator().manual_seed(seed)
    anchors, per_level = ddod_anchors(height, width, torch.device("cpu"))
    num_anchors = anchors.shape[0]
    logits = torch.randn(num_anchors, num_classes, generator=g) * 1.5 - 4.0
    deltas = torch.randn(num_anchors, 4, generator=g) * 0.1
    pred_boxes = Box2BoxTransform((10.0, 10.0, 5.0, 5.0)).apply_deltas(deltas, anchors)
    inputs = {
        "anchors": anchors.to(device),
        "num_anchors_per_level": per_level,
        "gt_boxes": random_gt_boxes(num_gt, height, width, g).to(device),
        "gt_classes": torch.randint(0, num_classes, (num_gt,), generator=g).to(device),
        "valid_mask": torch.ones(num_anchors, dtype=torch.bool, device=device),
        "pred_logits": logits.to(device),
        "pred_boxes": pred_boxes.to(device),
    }
    if with_grid_sizes:
        inputs["grid_sizes"] = grid_sizes(height, width)
    return inputs


def call_assigner(assigner, inputs: dict):
    kwargs = dict(inputs)
    args = (kwargs.pop("anchors"), kwargs.pop("num_anchors_per_level"))
    args += (kwargs.pop("gt_boxes"), kwargs.pop("gt_classes"))
    if not assigner.uses_predictions:
        kwargs.pop("pred_logits")
        kwargs.pop("pred_boxes")
    return assigner(*args, **kwargs)


def assigners():
    """{name: assigner}: DDOD's classification assigner and its baseline, plain ATSS."""
    return {
        "CostATSS a=0.8 (DDOD)": CostATSSAssigner(alpha=0.8, topk=9),
        "ATSS (IoU)": ATSSAssigner(topk=9),
    }


# ----------------------------------------------------------------------------------------------
# dense vs grid candidate selection
# ----------------------------------------------------------------------------------------------
def _pair_call(cls_assigner, reg_assigner, inputs: dict, shared: bool):
    """DDOD's two assignments of one image, with or without one shared candidate selection."""
    if shared:
        candidates = cls_assigner.select_candidates(
            inputs["anchors"], inputs["num_anchors_per_level"], inputs["gt_boxes"],
            inputs["valid_mask"], grid_sizes=inputs.get("grid_sizes"),
        )  # fmt: skip
        inputs = dict(inputs, candidates=candidates)
    return call_assigner(cls_assigner, inputs), call_assigner(reg_assigner, inputs)


def compare_paths(device: torch.device, size: Tuple[int, int], counts: List[int], runs: int):
    """Print time and peak memory of the dense and grid paths, one row per GT count."""
    from .common import MiB, interleaved_times, median, peak_memory_bytes

    h, w = size
    cls_a, reg_a = CostATSSAssigner(alpha=0.8, topk=9), CostATSSAssigner(alpha=0.5, topk=9)
    print(f"CostATSSAssigner on one {h}x{w} image (real P3-P7 anchors), {device}, median of {runs}")
    print("| GT | dense ms | grid ms | speed-up | dense peak MiB | grid peak MiB "
          "| pair ms (own / shared candidates) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m in counts:
        grid = assigner_inputs(h, w, m, device)
        dense = dict(grid)
        dense.pop("grid_sizes")
        fns = {
            "dense": lambda: call_assigner(cls_a, dense),
            "grid": lambda: call_assigner(cls_a, grid),
            "pair": lambda: _pair_call(cls_a, reg_a, grid, shared=False),
            "pair shared": lambda: _pair_call(cls_a, reg_a, grid, shared=True),
        }
        times, errors = interleaved_times(fns, device, warmup=2, runs=runs)
        if errors:
            raise RuntimeError(errors)
        ms = {n: 1e3 * median(t) for n, t in times.items()}
        known = [v for v in grid.values() if torch.is_tensor(v)]
        peak = {n: peak_memory_bytes(fns[n], device, known=known) / MiB for n in ("dense", "grid")}
        print(
            f"| {m} | {ms['dense']:.2f} | {ms['grid']:.2f} | {ms['dense'] / ms['grid']:.1f}x "
            f"| {peak['dense']:.2f} | {peak['grid']:.2f} "
            f"| {ms['pair']:.2f} / {ms['pair shared']:.2f} |"
        )


def main(argv=None):
    p = argparse.ArgumentParser(description="ATSS candidate selection: dense vs grid path.")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--size", default="800x1333", help="HEIGHTxWIDTH")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    compare_paths(torch.device(args.device), (h, w), args.objects, args.runs)


if __name__ == "__main__":
    main()
