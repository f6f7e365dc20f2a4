"""Latency at batch 1 on the CPU: eager vs TorchScript vs onnxruntime, and Soft-NMS's cost.

    python -m benchmarks.export_latency [--quick] [--reps 5]

Rows:

* quickstart: configs/quickstart/ddod_digits_cpu.py at 256x256 (with ``--checkpoint``, default
  /work/ckpt/quickstart_ddod/model_final.pth when it exists, else random weights);
* R50 800x1333: configs/ddod_R50_1x.py (DDOD, R-50-FPN, deformable first convs) at 800x1344
  (1333 padded to the stride 32), random weights, ``test_score_thresh=0`` so that every level
  hands its full 1000 candidates to NMS (the most NMS work a COCO image can cause).

Each row exports both formats, checks the exported detections against eager
(ddod.export.compare_detections), then times ``--reps`` runs after one warm-up and prints the
median. Eager is the model's ordinary forward (the project's CPU deformable-conv kernel);
TorchScript and onnxruntime run torchvision's / onnxruntime's DeformConv. torch and onnxruntime
use their default thread counts. Figures depend on the machine's load: quote it with them.
The last table times class-aware NMS and Soft-NMS on 5000 candidates (5 levels x 1000), 80
classes.
"""
import argparse
import os
import statistics
import tempfile
import time

import torch

import ddod  # noqa: F401
from detectron2.config import LazyConfig, instantiate
from detectron2.checkpoint import DetectionCheckpointer

from ddod.export import compare_detections, eager_detections, export_model, load_exported
from ddod.modeling import ClassAwareNMS, SoftNMS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CKPT = "/work/ckpt/quickstart_ddod/model_final.pth"


def _median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _row(name, config, size, reps, checkpoint=None, overrides=()):
    cfg = LazyConfig.load(os.path.join(ROOT, config))
    cfg = LazyConfig.apply_overrides(cfg, list(overrides))
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    if checkpoint:
        DetectionCheckpointer(model).load(checkpoint)
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=g)
    results = {"eager": _median_ms(lambda: eager_detections(model, image), reps)}
    with tempfile.TemporaryDirectory() as d:
        for fmt in ("torchscript", "onnx"):
            t = time.perf_counter()
            path = export_model(model, image, fmt, os.path.join(d, fmt))
            export_s = time.perf_counter() - t
            run = load_exported(path)
            check = compare_detections(eager_detections(model, image), run(image))
            results[fmt] = _median_ms(lambda: run(image), reps)
            results[fmt + "_check"] = (check["equal"], check["count"][0], export_s)
    return name, results


def soft_nms_table(reps):
    g = torch.Generator().manual_seed(0)
    n = 5000
    xy = torch.rand(n, 2, generator=g) * 1200
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 200 + 4], 1)
    scores = torch.rand(n, generator=g)
    classes = torch.randint(0, 80, (n,), generator=g)
    rows = []
    for name, part in [
        ("class-aware NMS 0.6", ClassAwareNMS(0.6)),
        ("Soft-NMS linear", SoftNMS("linear")),
        ("Soft-NMS gaussian", SoftNMS("gaussian")),
    ]:
        rows.append((name, _median_ms(lambda: part(boxes, scores, classes, 100), reps)))
    # the worst case for the round loop: all 5000 candidates in one class
    one = torch.zeros_like(classes)
    rows.append(("Soft-NMS gaussian, 1 class", _median_ms(lambda: SoftNMS()(boxes, scores, one, 100), 1)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="quickstart row only")
    parser.add_argument("--checkpoint", default=DEFAULT_CKPT if os.path.exists(DEFAULT_CKPT) else "")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    rows = [_row("quickstart 256x256", "configs/quickstart/ddod_digits_cpu.py", (256, 256),
                 args.reps, checkpoint=args.checkpoint)]  # fmt: skip
    if not args.quick:
        rows.append(_row("DDOD R50 800x1344", "configs/ddod_R50_1x.py", (800, 1344),
                         max(1, args.reps // 2), overrides=["model.test_score_thresh=0.0"]))  # fmt: skip
    print(f"\nbatch 1, CPU, {torch.get_num_threads()} torch threads, median ms")
    print("| model | eager | TorchScript | onnxruntime | exported = eager (dets) | export s (TS / ONNX) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        ts, ox = r["torchscript_check"], r["onnx_check"]
        print(
            f"| {name} | {r['eager']:.0f} | {r['torchscript']:.0f} | {r['onnx']:.0f} | "
            f"{ts[0] and ox[0]} ({ts[1]}) | {ts[2]:.0f} / {ox[2]:.0f} |"
        )
    print("\n| post-processing, 5000 candidates, 80 classes | ms |\n|---|---|")
    for name, ms in soft_nms_table(args.reps):
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
