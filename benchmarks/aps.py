"""MOD's aligned points sampler (APS): assignment time and its share of a training step.

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.aps --device cpu             # both tables
    python -m benchmarks.run --device cpu --sections aps                     # the same rows

* assignment: ``APSAssigner.assign_batch`` on one image of the real P3-P7 points (FCOS*'s one
  point per location) as the number of objects grows, next to the ``ATSSAssigner`` (the plain
  IoU one) on the same image, and next to the reference's way (kept only here): a Python loop
  over the objects by ascending area, one scikit-learn ``GaussianMixture`` fit per object on the
  CPU, with the same per-point losses. The sklearn loop is skipped where its estimated time
  (from the smaller counts) exceeds ``--max-loop-s``.
* share: a MOD training step (forward, backward, SGD step) at ``--share-objects`` objects per
  image, with the time spent in ``assign_batch`` measured inside the same step. The target is
  at most 15% of the step.
"""
import argparse
import math
import os
import time
from typing import List, Tuple

import numpy as np
import torch

import ddod  # noqa: F401  (before any detectron2 part: compat patches)
from detectron2.utils.events import EventStorage

from ddod.modeling import APSAssigner, ATSSAssigner

from .assigner import grid_sizes
from .common import interleaved_times, median, synchronize
from .models import random_gt_boxes

STRIDES = (8, 16, 32, 64, 128)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE_CONFIGS = ("configs/mod_R50_1x.py", "configs/paper_mod/table2_components/aps.py")
TARGET_APS_SHARE = 0.15


def point_inputs(height: int, width: int, num_gt: int, device, *, num_classes=80, seed=0):
    """One image's points (as stride x stride boxes, FCOS*'s anchors), random GT and random
    predictions (logits ~ N(-4, 1.5^2), boxes of 0.5-4 strides around each point)."""
    g = torch.Generator().manual_seed(seed)
    pts, counts, sizes = [], [], []
    for (h, w), s in zip(grid_sizes(height, width), STRIDES):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        c = torch.stack([xs.flatten(), ys.flatten()], 1).float() * s + s / 2
        pts.append(c)
        counts.append(h * w)
        sizes.append(torch.full((h * w, 1), float(s)))
    pts, sizes = torch.cat(pts), torch.cat(sizes)
    anchors = torch.cat([pts - sizes / 2, pts + sizes / 2], 1)
    R = len(pts)
    ltrb = (torch.rand(R, 4, generator=g) * 3.5 + 0.5) * sizes
    boxes = torch.cat([pts - ltrb[:, :2], pts + ltrb[:, 2:]], 1)
    return {
        "anchors": anchors.to(device),
        "num_anchors_per_level": counts,
        "gt_boxes": random_gt_boxes(num_gt, height, width, g).to(device),
        "gt_classes": torch.randint(0, num_classes, (num_gt,), generator=g).to(device),
        "pred_logits": (torch.randn(R, num_classes, generator=g) * 1.5 - 4).to(device),
        "pred_boxes": boxes.to(device),
    }


def run_aps(aps: APSAssigner, x: dict):
    return aps.assign_batch(
        x["anchors"], x["num_anchors_per_level"], [x["gt_boxes"]], [x["gt_classes"]],
        pred_logits=x["pred_logits"][None], pred_boxes=x["pred_boxes"][None],
    )  # fmt: skip


def run_atss(atss: ATSSAssigner, x: dict, height: int, width: int):
    return atss(
        x["anchors"], x["num_anchors_per_level"], x["gt_boxes"], x["gt_classes"],
        grid_sizes=grid_sizes(height, width),
    )  # fmt: skip


def sklearn_loop(x: dict) -> torch.Tensor:
    """APS the reference's way: per-point losses computed once, vectorised (as the reference
    does), then a Python loop over the objects with one scikit-learn GMM fit each, on the CPU.
    Returns (R,) matched GT indices."""
    from sklearn.mixture import GaussianMixture
    from torchvision.ops import sigmoid_focal_loss

    from ddod.modeling.losses import giou_loss_per_box

    anchors = x["anchors"].cpu()
    gts, cls = x["gt_boxes"].cpu(), x["gt_classes"].cpu()
    logits, boxes = x["pred_logits"].cpu(), x["pred_boxes"].cpu()
    counts = x["num_anchors_per_level"]
    pts = (anchors[:, :2] + anchors[:, 2:]) / 2
    R, M = len(pts), len(gts)
    area = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    inside = ((pts[None] > gts[:, None, :2]) & (pts[None] < gts[:, None, 2:])).all(-1)  # (M, R)
    key = torch.where(inside, area[:, None], math.inf)
    srt = key.sort(0)
    s1, s2 = srt.indices[0], srt.indices[min(1, M - 1)]
    has2 = torch.isfinite(srt.values[min(1, M - 1)]) if M > 1 else torch.zeros(R, dtype=torch.bool)
    onehot1 = torch.nn.functional.one_hot(cls[s1], logits.shape[1]).float()
    multihot = torch.maximum(onehot1, torch.nn.functional.one_hot(cls[s2], logits.shape[1]).float())
    lc = [None, sigmoid_focal_loss(logits, onehot1, reduction="none").sum(1),
          sigmoid_focal_loss(logits, multihot, reduction="none").sum(1)]  # fmt: skip
    lr = [None, giou_loss_per_box(boxes, gts[s1]), giou_loss_per_box(boxes, gts[s2])]
    slot = torch.where(inside.any(0), 1, 0)
    matched = torch.full((R,), -1)
    starts = np.cumsum([0] + counts)
    for g in area.argsort().tolist():
        cand_levels = []
        for lv in range(len(counts)):
            a, b = starts[lv], starts[lv + 1]
            c = (inside[g, a:b] & (slot[a:b] > 0)).nonzero().flatten() + a
            if len(c) == 0:
                continue
            sl = slot[c]
            lcc = torch.where(sl == 2, lc[2][c], lc[1][c])
            lrr = torch.where(sl == 2, lr[2][c], lr[1][c])
            tot = lcc + lrr
            k = min(9, len(c))
            v, i = tot.topk(k, largest=False)
            cand_levels.append((v.mean().item(), c[i], lcc[i], lrr[i]))
        chosen = torch.zeros(0, dtype=torch.int64)
        if cand_levels:
            cand_levels.sort(key=lambda t: t[0])
            use = cand_levels[:2]
            c = torch.cat([u[1] for u in use])
            lcc = torch.cat([u[2] for u in use])
            lrr = torch.cat([u[3] for u in use])
            if len(use) == 2:
                s = (torch.sigmoid((lcc - lrr).abs()) * (lcc + lrr)).sqrt()
            else:
                s = lcc + lrr
            if len(c) == 1:
                chosen = c
            else:
                v = (10 * s).numpy().reshape(-1, 1).astype(np.float64)
                gm = GaussianMixture(
                    2, weights_init=[0.5, 0.5], means_init=[[v.min()], [v.max()]],
                    precisions_init=np.full((2, 1, 1), 0.1),
                )  # fmt: skip
                gm.fit(v)
                comp0 = gm.predict(v) == 0
                if comp0.any():
                    ll = gm.score_samples(v)
                    best = np.nonzero(comp0)[0][np.argmax(ll[comp0])]
                    comp0 &= v[:, 0] <= v[best, 0]
                chosen = c[torch.from_numpy(comp0)]
        ins = inside[g]
        was1, was2 = ins & (slot == 1), ins & (slot == 2)
        slot = torch.where(was1, torch.where(has2, 2, 0), torch.where(was2, 0, slot))
        matched[chosen] = g
        slot[chosen] = 0
    return matched


def cpu_seconds(fn) -> float:
    """Process CPU time of one call (CPU device only)."""
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def assignment_rows(device, size: Tuple[int, int], objects: List[int], runs: int,
                    max_loop_s: float = 60.0) -> List[dict]:  # fmt: skip
    """Median seconds of APS, ATSS and the sklearn loop on one image per object count."""
    h, w = size
    aps, atss = APSAssigner(), ATSSAssigner(topk=9)
    out = []
    loop_per_object = None
    sklearn_loop(point_inputs(64, 64, 2, device))  # import scikit-learn, first fit: not timed
    for m in objects:
        x = point_inputs(h, w, m, device)
        fns = {"APS (batched GMM)": lambda: run_aps(aps, x),
               "ATSS (IoU)": lambda: run_atss(atss, x, h, w)}  # fmt: skip
        times, errors = interleaved_times(fns, device, warmup=1, runs=runs)
        if errors:
            raise RuntimeError(errors)
        row = {"objects": m, "points": x["anchors"].shape[0]}
        row.update({n: median(t) for n, t in times.items()})
        # CPU seconds of the process as well: on a shared host the wall time also counts the
        # time the process waited for a core (run with --threads 1 to compare them)
        row["cpu"] = {n: median(cpu_seconds(f) for _ in range(runs)) for n, f in fns.items()}
        loop_s = None
        if loop_per_object is None or loop_per_object * m <= max_loop_s:
            t0, c0 = time.perf_counter(), time.process_time()
            sklearn_loop(x)
            loop_s = time.perf_counter() - t0
            row["cpu"]["sklearn loop (reference)"] = time.process_time() - c0
            loop_per_object = loop_s / m
        row["sklearn loop (reference)"] = loop_s
        out.append(row)
    return out


def step_share(device, size: Tuple[int, int], num_gt: int, runs: int, config: str) -> dict:
    """A training step of the R-50 config ``config`` (random weights, nothing frozen), batch 2
    at ``size``, ``num_gt`` objects per image; APS's time measured inside the same steps."""
    from detectron2.config import LazyConfig, instantiate

    from .models import make_batch

    cfg = LazyConfig.load(os.path.join(ROOT, config))
    cfg.model.backbone.bottom_up.freeze_at = 0
    model = instantiate(cfg.model).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    batch = make_batch(2, size[0], size[1], num_gt, device)
    aps = model.cls_assigner
    spent: List[float] = []
    cpu_spent: List[float] = []
    cpu_steps: List[float] = []
    inner = aps.assign_batch

    def timed(*a, **k):
        synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        r = inner(*a, **k)
        synchronize(device)
        spent.append(time.perf_counter() - t0)
        cpu_spent.append(time.process_time() - c0)
        return r

    aps.assign_batch = timed
    steps = []
    with EventStorage():
        for i in range(runs + 1):
            synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            loss = sum(model(batch).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            synchronize(device)
            if i:  # the first is a warm-up
                steps.append(time.perf_counter() - t0)
                cpu_steps.append(time.process_time() - c0)
    step, assign = median(steps), median(spent[1:])
    cpu_step, cpu_assign = median(cpu_steps), median(cpu_spent[1:])
    return {"config": config, "objects": num_gt, "step_s": step, "aps_s": assign,
            "share": assign / step, "cpu_share": cpu_assign / cpu_step}  # fmt: skip


def render(rows: List[dict], shares: List[dict], device, size) -> str:
    h, w = size
    fmt = lambda s: "-" if s is None else f"{1e3 * s:.1f} ms"  # noqa: E731
    out = [f"APS assignment, one {h}x{w} image ({rows[0]['points']} points), {device}, median",
           "", "| objects | APS (batched GMM) | ATSS assigner | APS / ATSS | per-object sklearn "
           "loop (reference) | loop / APS |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        a, b, c = r["APS (batched GMM)"], r["ATSS (IoU)"], r["sklearn loop (reference)"]
        speed = "-" if c is None else f"{c / a:.1f}x"
        out.append(f"| {r['objects']} | {fmt(a)} | {fmt(b)} | {a / b:.1f}x | {fmt(c)} | {speed} |")
    if device.type == "cpu":
        out += ["", "The same, CPU time of the process (robust to waiting for a core)", "",
                "| objects | APS | ATSS | APS / ATSS | sklearn loop | loop / APS |",
                "| ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for r in rows:
            cpu = r["cpu"]
            a, b = cpu["APS (batched GMM)"], cpu["ATSS (IoU)"]
            c = cpu.get("sklearn loop (reference)")
            speed = "-" if c is None else f"{c / a:.1f}x"
            out.append(f"| {r['objects']} | {fmt(a)} | {fmt(b)} | {a / b:.1f}x | {fmt(c)} | {speed} |")
    out += ["", "APS share of a training step (batch 2, random weights, forward + backward + SGD)",
            "", "| config | objects/img | step | APS | share | share of CPU time | target <= 15% |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for s in shares:
        ok = "PASS" if s["share"] <= TARGET_APS_SHARE else "FAIL"
        out.append(f"| {s['config']} | {s['objects']} | {fmt(s['step_s'])} | {fmt(s['aps_s'])} "
                   f"| {100 * s['share']:.1f}% | {100 * s['cpu_share']:.1f}% | {ok} |")  # fmt: skip
    return "\n".join(out)


def section(device, args) -> str:
    """The APS tables for ``benchmarks.run --sections aps``: its first assigner size, its
    assigner object counts, its share object count and model image size."""
    size = tuple(args.assigner_sizes[0])
    rows = assignment_rows(device, size, args.assigner_objects, max(args.runs, 1))
    shares = [step_share(device, tuple(args.size), args.share_objects, max(args.runs // 2, 1), c)
              for c in SHARE_CONFIGS]  # fmt: skip
    return render(rows, shares, device, size)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--size", default="512x832", help="HEIGHTxWIDTH of the assignment rows")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--max-loop-s", type=float, default=60.0)
    p.add_argument("--share-size", default="320x512", help="HEIGHTxWIDTH of the step rows")
    p.add_argument("--share-objects", type=int, default=100)
    p.add_argument("--share-runs", type=int, default=3)
    p.add_argument("--share-configs", nargs="*",
                   default=list(SHARE_CONFIGS))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    share_size = tuple(int(v) for v in args.share_size.lower().split("x"))
    rows = assignment_rows(device, size, args.objects, args.runs, args.max_loop_s)
    shares = [step_share(device, share_size, args.share_objects, args.share_runs, c)
              for c in args.share_configs]  # fmt: skip
    print(render(rows, shares, device, size))


if __name__ == "__main__":
    main()
