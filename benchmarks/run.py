"""Speed and memory of DDOD next to the same-framework ATSS baseline and Detectron2's own FCOS
and RetinaNet, in one run, printed as one Markdown table with a PASS/FAIL summary of the targets.

    python -m benchmarks.run --device cuda              # COCO-like: R50, 800x1333 ("coco" preset)
    python -m benchmarks.run --device cpu               # reduced: R50, 320x512 ("cpu" preset)
    python -m benchmarks.run --device cpu --quick       # fewer runs and assigner sizes
    python -m benchmarks.run --device cpu --preset tiny # smoke-test size (under a minute)

On the CPU the run keeps to a time budget (``--time-budget``: 420 s, 140 s with ``--quick``;
``0`` for none): each section gets a share of the time left by its rough cost, and a figure whose
runs would overrun its share gets fewer (at least one; its note says "k of n runs (time
budget)"), so the command ends in about the same time on a slow or busy host as on a fast one.

What is measured (random weights, random uint8 images already on the device, a fixed number of
random GT boxes per image, so no data loading is timed):

* train: one training step, forward + backward + ``SGD(momentum=0.9, weight_decay=1e-4)`` step,
  fp32, for every model at the same backbone, image size and batch size; peak memory of the step.
  The learning rate is tiny so the random models do not drift between runs (the step does the
  same work whatever the rate).
* infer: ``model.eval()`` forward under ``torch.no_grad()`` with post-processing, batch 1 (latency)
  and a larger batch (throughput), in fp32 and mixed precision (fp16 autocast on CUDA, bf16
  autocast on the CPU). On a CPU without native bf16 (see ``ddod.utils.cpu``; the header's
  "CPU ISA" line says which) the bf16 rows are skipped and labelled so: emulated bf16 is
  hundreds of times slower and would keep the run going for hours. With ``--postprocess full``
  (default) every classification output starts at p = 0.5 so every FPN level fills its
  top-1000 candidates and NMS runs at full load, as with a trained model on COCO; a freshly
  initialised detector (p = 0.01) would keep no box at all.
* assignment share: DDOD's training step at ``--share-objects`` GT per image, with the
  assignment (``DDOD.label_anchors``: prediction decoding (once for both branches), both
  cost-ATSS calls per image and the label/box targets) timed inside the same step, synchronised on CUDA.
* many objects: DDOD's training step at ``--max-objects`` GT per image: time, peak memory, and
  whether it fits.
* assigner: ``CostATSSAssigner`` (DDOD, alpha=0.8) and the plain ``ATSSAssigner`` alone, on the
  real P3-P7 anchors of an image size, as the number of GT per image and the image size grow.

Every figure is the median of ``--runs`` timed runs after ``--warmup`` untimed ones; models of one
row group run interleaved, and "time / baseline" is the ratio of medians from the same run.
Memory is defined in ``benchmarks/common.py``.

On a CPU shared with other jobs, OpenMP worker threads that spin while waiting for a core make
small ops very slow and the figures erratic (a tiny model's step measured 50x slower with two
threads than with one); run with ``OMP_WAIT_POLICY=PASSIVE`` in the environment, or
``--threads 1``. The header prints the load average, the thread settings and the CPU time next
to the wall time, so a noisy run shows as one.
"""
import argparse
import json
import os
import sys
import time
import warnings
from typing import Dict, List, Optional

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import torch  # noqa: E402

import ddod  # noqa: E402,F401  (before any detectron2 part: compat patches)
from detectron2.utils.events import EventStorage  # noqa: E402

from .assigner import assigner_inputs, assigners, call_assigner  # noqa: E402
from .common import (  # noqa: E402
    describe_error,
    interleaved_times,
    load_average,
    machine_description,
    median,
    mixed_precision_skip_reason,
    peak_memory_bytes,
    TimeBudget,
    precision_context,
    precision_label,
    share_of_time,
    state_tensors,
    synchronize,
    time_call,
    total_memory_bytes,
)
from .models import (  # noqa: E402
    BACKBONES,
    BASELINE,
    EXTRA_MODEL_NAMES,
    MODEL_NAMES,
    batch_tensors,
    build_models,
    make_batch,
    project_model_files,
    set_classification_prior,
)
from .report import Row, Target, fmt_bytes, fmt_time, render_table, render_targets  # noqa: E402

PRESETS = {
    # COCO-like, for the GPU
    "coco": dict(
        backbone="R50", size="800x1333", train_batch=2, infer_batch=8, num_gt=8, warmup=5,
        runs=20, assigner_sizes=["512x853", "800x1333", "1024x1707"],
    ),  # fmt: skip
    # reduced, for the CPU: ~500 CPU-seconds of work with oneDNN capped to AVX2, so about 5 min
    # on a quiet 2-core AVX2 host; the budgets keep it under 8 min (3 with --quick) elsewhere.
    # --quick at its minimum (1 warm-up + 1 run everywhere) is ~220 CPU-seconds.
    "cpu": dict(
        backbone="R50", size="320x512", train_batch=2, infer_batch=8, num_gt=8, warmup=1,
        runs=5, throughput_runs=3, assigner_sizes=["320x512", "512x832", "800x1333"],
        time_budget=420, quick_time_budget=140,
    ),  # fmt: skip
    # smoke test: every code path, nothing of realistic size
    "tiny": dict(
        backbone="tiny", size="128x192", train_batch=2, infer_batch=2, num_gt=4, warmup=1,
        runs=2, assigner_sizes=["128x192", "256x384"],
    ),  # fmt: skip
}
DEFAULT_OBJECTS = [1, 10, 100, 1000]

TARGET_TRAIN = 1.08
TARGET_INFER = 1.05
TARGET_SHARE = 0.10

# Costs in training steps (batch 2) of one model, measured on the CPU at R50 320x512 (CPU
# seconds, oneDNN capped to AVX2): a step at 8, 100 or 1,000 GT/img and a peak-memory pass all
# take about one step (4.6-5 s); an image's inference with full post-processing about 0.2
# (0.55 s vs 2.4 s a step on the AVX-512 host); an assigner case about 0.15.
INFER_IMAGE_IN_STEPS = 0.2
PEAK_PASS_IN_STEPS = 1.0


_T0 = time.perf_counter(), time.process_time()


def log(msg: str):
    """Progress on stderr, with the wall-clock and CPU seconds since start: where the time goes
    on a slow host, and how much of it other jobs took on a busy one (wall >> CPU / threads)."""
    wall, cpu = time.perf_counter() - _T0[0], time.process_time() - _T0[1]
    print(f"[{wall:6.1f} s, CPU {cpu:6.1f} s] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str):
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are HEIGHTxWIDTH, e.g. 800x1333; got {text!r}")


def get_args(argv=None):
    p = argparse.ArgumentParser(
        description="DDOD speed/memory benchmarks vs ATSS, FCOS and RetinaNet (one table).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    p.add_argument("--device", choices=["cpu", "cuda"], default=default_device)
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: coco on cuda, cpu on cpu")
    p.add_argument(
        "--quick", action="store_true", help="fewer runs; the smallest and largest assigner sizes"
    )
    p.add_argument("--backbone", choices=sorted(BACKBONES))
    p.add_argument("--size", type=str, help="image HEIGHTxWIDTH of the model rows")
    p.add_argument("--train-batch", type=int)
    p.add_argument("--infer-batch", type=int, help="batch size of the throughput rows")
    p.add_argument("--num-gt", type=int, help="GT boxes per image in the model rows")
    p.add_argument("--warmup", type=int)
    p.add_argument("--runs", type=int)
    p.add_argument(
        "--throughput-runs", type=int, help="timed runs of the large-batch inference rows"
    )
    p.add_argument(
        "--models", nargs="+", default=list(MODEL_NAMES),
        choices=MODEL_NAMES + EXTRA_MODEL_NAMES + tuple(project_model_files()),
        help="the baseline (ATSS) is always added; <file>.py: configs/common/models/<file>.py",
    )  # fmt: skip
    p.add_argument(
        "--assigner-sizes", "--sizes", nargs="+", type=str, help="image sizes of the assigner rows"
    )
    p.add_argument("--assigner-objects", nargs="+", type=int, default=DEFAULT_OBJECTS)
    p.add_argument("--share-objects", type=int, default=100)
    p.add_argument("--max-objects", type=int, default=1000)
    p.add_argument(
        "--sections", nargs="+", default=["train", "infer", "share", "objects", "assigner"],
        choices=["train", "infer", "share", "objects", "assigner", "aps"],
        help="aps (MOD's aligned points sampler, benchmarks/aps.py) is not in the default",
    )  # fmt: skip
    p.add_argument("--postprocess", choices=["full", "init"], default="full")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument(
        "--time-budget", type=float,
        help="seconds for the whole run (default: 420 on the cpu preset, 140 with --quick; "
        "none otherwise; 0 = none): figures get fewer runs (at least 1) where time runs short",
    )  # fmt: skip
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=str, help="also write every figure (all runs) to this file")
    args = p.parse_args(argv)

    preset = PRESETS[args.preset or ("coco" if args.device == "cuda" else "cpu")]
    args.preset = args.preset or ("coco" if args.device == "cuda" else "cpu")
    budget_key = "quick_time_budget" if args.quick else "time_budget"
    if args.time_budget is None:
        args.time_budget = preset.get(budget_key)
    for key, value in preset.items():
        if key not in ("time_budget", "quick_time_budget") and getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.throughput_runs is None:
        args.throughput_runs = args.runs
    if args.quick:
        args.warmup = min(args.warmup, 1)
        args.runs = min(args.runs, 3)
        args.throughput_runs = min(args.throughput_runs, 2)
        if len(args.assigner_sizes) > 2:
            args.assigner_sizes = [args.assigner_sizes[0], args.assigner_sizes[-1]]
    if BASELINE not in args.models:
        args.models = [BASELINE] + list(args.models)
    if args.runs < 1 or args.throughput_runs < 1 or args.warmup < 0:
        p.error("--runs and --throughput-runs must be >= 1 and --warmup >= 0")
    try:
        args.size = parse_size(args.size)
        args.assigner_sizes = [parse_size(s) for s in args.assigner_sizes]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    return args


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
class TrainStep:
    """zero_grad -> forward (losses) -> backward -> SGD step, on a fixed batch."""

    def __init__(self, model, batch, lr: float = 1e-6):
        self.model = model
        self.batch = batch
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
        self.last_loss = None

    def __call__(self):
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with EventStorage():
            losses = self.model(self.batch)
        loss = sum(losses.values())
        loss.backward()
        self.optimizer.step()
        self.last_loss = loss.detach()

    def peak_memory(self, device) -> int:
        self.optimizer.zero_grad(set_to_none=True)
        return peak_memory_bytes(
            self, device,
            state=state_tensors(self.model, self.optimizer),
            known=batch_tensors(self.batch),
        )  # fmt: skip


class AssignmentTimer:
    """Times, inside real training steps, ``DDOD.label_anchors`` (the whole assignment) and the
    assigner modules' forward (the cost-ATSS calls alone)."""

    def __init__(self, model, device):
        self.model = model
        self.device = device
        self.label_anchors_s = 0.0
        self.assigner_s = 0.0
        self.assigner_calls = 0
        self._hooks = []
        self._t0 = None

    def reset(self):
        self.label_anchors_s, self.assigner_s, self.assigner_calls = 0.0, 0.0, 0

    def __enter__(self):
        original = self.model.label_anchors

        def timed_label_anchors(*args, **kwargs):
            synchronize(self.device)
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            synchronize(self.device)
            self.label_anchors_s += time.perf_counter() - t0
            return out

        def pre(module, inputs):
            synchronize(self.device)
            self._t0 = time.perf_counter()

        def post(module, inputs, output):
            synchronize(self.device)
            self.assigner_s += time.perf_counter() - self._t0
            self.assigner_calls += 1

        self.model.label_anchors = timed_label_anchors  # instance attribute shadows the method
        seen = set()
        for assigner in (self.model.cls_assigner, self.model.reg_assigner):
            if assigner is None or id(assigner) in seen:
                continue
            seen.add(id(assigner))
            self._hooks.append(assigner.register_forward_pre_hook(pre))
            self._hooks.append(assigner.register_forward_hook(post))
        return self

    def __exit__(self, *exc):
        del self.model.label_anchors
        for h in self._hooks:
            h.remove()
        self._hooks = []


def safe_peak_memory(step: TrainStep, device):
    """(peak bytes, "") or (None, why it could not be measured)."""
    try:
        return step.peak_memory(device), ""
    except Exception as e:  # noqa: BLE001
        msg = describe_error(e)
        log(f"  peak memory failed: {msg}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None, f"peak memory: {msg}"


def log_errors(errors: Dict[str, str]):
    for name, msg in errors.items():
        log(f"  {name} failed: {msg}")


def budget_note(times: Dict[str, List[float]], name: str, asked: int) -> str:
    """"k of n runs (time budget)" where the time budget cut a figure's runs short."""
    done = len(times.get(name, []))
    return f"{done} of {asked} runs (time budget)" if 0 < done < asked else ""


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def ratio_to(values: Dict[str, float], name: str, baseline: str) -> Optional[float]:
    if baseline not in values or name not in values or not values[baseline]:
        return None
    return values[name] / values[baseline]


# ----------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------
def bench_train(models, args, device, rows: List[Row], results: dict, deadline=None):
    h, w = args.size
    batch = make_batch(args.train_batch, h, w, args.num_gt, device, seed=args.seed)
    steps = {name: TrainStep(model, batch) for name, model in models.items()}
    setting = f"fp32, batch {args.train_batch}, {h}x{w}, {args.num_gt} GT/img"
    log(f"[train] {setting}: {args.warmup} warm-up + {args.runs} interleaved runs of {list(steps)}")
    # The peak-memory passes after the runs take about one round (a tracked step each).
    times, errors = interleaved_times(
        steps, device, warmup=args.warmup, runs=args.runs, deadline=deadline,
        reserve_rounds=PEAK_PASS_IN_STEPS,
    )  # fmt: skip
    log_errors(errors)
    medians = {n: median(t) for n, t in times.items()}
    for name in models:
        if name in errors:
            rows.append(Row("train step", name, setting, note=errors[name]))
            continue
        log(f"[train] peak memory of {name}")
        peak, note = safe_peak_memory(steps[name], device)
        note = join_notes(note, budget_note(times, name, args.runs))
        loss = steps[name].last_loss
        if loss is not None and not torch.isfinite(loss).item():
            note = "; ".join(filter(None, [note, "non-finite loss"]))
        rows.append(
            Row("train step", name, setting, times[name], medians[name],
                ratio_to(medians, name, BASELINE), BASELINE,
                args.train_batch / medians[name], peak, note)
        )  # fmt: skip
    results["train"] = {"medians": medians, "errors": errors}
    for step in steps.values():
        step.optimizer.zero_grad(set_to_none=True)
    return steps


def bench_infer(models, args, device, rows: List[Row], results: dict, deadline=None):
    """Inference latency (batch 1) and throughput (--infer-batch), fp32 and mixed precision;
    the mixed-precision rows are skipped (and say so) on a CPU without native bf16."""
    if args.postprocess == "full":
        for model in models.values():
            set_classification_prior(model, 0.5)
    for model in models.values():
        model.eval()
    results["infer"] = {}
    skip = {"fp32": None, "mixed": mixed_precision_skip_reason(device)}
    groups = [(p, bs) for p in ("fp32", "mixed") for bs in sorted({1, args.infer_batch})]

    def cost(group):  # rough cost, for a group's share of the time: images per call x calls
        precision, bs = group
        runs = args.runs if bs == 1 else args.throughput_runs
        return 0 if skip[precision] else bs * (args.warmup + runs)

    for k, (precision, bs) in enumerate(groups):
        kind = "latency" if bs == 1 else "throughput"
        h, w = args.size
        setting = f"{precision_label(device, precision)}, batch {bs} ({kind}), {h}x{w}"
        reason = skip[precision]
        if reason:
            log(f"[infer] {setting}: {reason}")
            rows.extend(Row("inference", n, setting, note=reason) for n in models)
            results["infer"][(precision, bs)] = {"medians": {}, "errors": {}, "skipped": reason}
            continue
        group_deadline = share_of_time(deadline, cost(groups[k]), sum(map(cost, groups[k:])))
        results["infer"][(precision, bs)] = infer_group(
            models, args, device, precision, bs, setting, rows, group_deadline
        )


def infer_group(models, args, device, precision, bs, setting, rows: List[Row], deadline):
    """One row per model: ``bs`` images in ``precision``, interleaved; {"medians", "errors"}."""
    h, w = args.size
    batch = make_batch(bs, h, w, 0, device, seed=args.seed, with_instances=False)

    def forward(model):
        with torch.no_grad(), precision_context(device, precision):
            return model(batch)

    fns = {name: (lambda m=m: forward(m)) for name, m in models.items()}
    log(f"[infer] {setting}")
    runs = args.runs if bs == 1 else args.throughput_runs
    times, errors = interleaved_times(
        fns, device, warmup=args.warmup, runs=runs, deadline=deadline
    )
    log_errors(errors)
    medians = {n: median(t) for n, t in times.items()}
    for name in models:
        if name in errors:
            rows.append(Row("inference", name, setting, note=errors[name]))
            continue
        rows.append(
            Row("inference", name, setting, times[name], medians[name],
                ratio_to(medians, name, BASELINE), f"{BASELINE}, same precision and batch",
                bs / medians[name], note=budget_note(times, name, runs))
        )  # fmt: skip
    return {"medians": medians, "errors": errors}


def bench_share(models, args, device, rows: List[Row], results: dict, deadline=None):
    """Share of DDOD's training step spent in assignment, at --share-objects GT per image."""
    h, w = args.size
    names = [n for n in ("DDOD", BASELINE) if n in models]
    batch = make_batch(args.train_batch, h, w, args.share_objects, device, seed=args.seed + 1)
    steps = {n: TrainStep(models[n], batch) for n in names}
    timers = {n: AssignmentTimer(models[n], device) for n in names}
    setting = f"fp32, batch {args.train_batch}, {h}x{w}, {args.share_objects} GT/img"
    log(f"[share] {setting}")
    records = {n: [] for n in names}

    def instrumented(n):
        def fn():
            with timers[n] as timer:
                timer.reset()
                t = time_call(steps[n], device)
            records[n].append((t, timer.label_anchors_s, timer.assigner_s, timer.assigner_calls))

        return fn

    fns = {n: instrumented(n) for n in names}
    times, errors = interleaved_times(
        fns, device, warmup=args.warmup, runs=args.runs, deadline=deadline
    )
    log_errors(errors)
    ok = [n for n in names if n not in errors]
    step_times, label_times, shares, assigner_shares, calls = {}, {}, {}, {}, {}
    for n in ok:
        timed = records[n][-len(times[n]):]  # the warm-up calls come first
        step_times[n] = [r[0] for r in timed]
        label_times[n] = [r[1] for r in timed]
        shares[n] = [r[1] / r[0] for r in timed]
        assigner_shares[n] = [r[2] / r[0] for r in timed]
        calls[n] = timed[-1][3]
    medians = {n: median(step_times[n]) for n in ok}
    for n in names:
        if n in errors:
            rows.append(Row("assignment share", n, setting, note=errors[n]))
            continue
        note = (
            f"assignment {100 * median(shares[n]):.1f}% of the step "
            f"(label_anchors {fmt_time(median(label_times[n]))}; assigner modules alone "
            f"{100 * median(assigner_shares[n]):.1f}%, {calls[n]} calls)"
        )
        note = join_notes(note, budget_note(times, n, args.runs))
        rows.append(
            Row("assignment share", n, setting, step_times[n], medians[n],
                ratio_to(medians, n, BASELINE), BASELINE, args.train_batch / medians[n], None, note)
        )  # fmt: skip
    results["share"] = {
        n: {"share": median(shares[n]), "assigner_share": median(assigner_shares[n]),
            "label_anchors_s": median(label_times[n]), "step_s": medians[n]}
        for n in ok
    }  # fmt: skip
    results["share_errors"] = errors


def bench_many_objects(models, args, device, rows: List[Row], results: dict, deadline=None):
    """DDOD's (and ATSS's) training step at --max-objects GT per image: does it fit?"""
    h, w = args.size
    names = [n for n in ("DDOD", BASELINE) if n in models]
    batch = make_batch(args.train_batch, h, w, args.max_objects, device, seed=args.seed + 2)
    steps = {n: TrainStep(models[n], batch) for n in names}
    setting = f"fp32, batch {args.train_batch}, {h}x{w}, {args.max_objects} GT/img"
    log(f"[objects] {setting}")
    runs = max(1, min(args.runs, 3))
    times, errors = interleaved_times(
        steps, device, warmup=min(args.warmup, 1), runs=runs, deadline=deadline,
        reserve_rounds=PEAK_PASS_IN_STEPS,  # the peak-memory passes after the runs
    )  # fmt: skip
    log_errors(errors)
    medians = {n: median(t) for n, t in times.items()}
    total = total_memory_bytes(device)
    results["objects"] = {}
    for n in names:
        if n in errors:
            fits = "NO (out of memory)" if errors[n] == "out of memory" else "error"
            rows.append(Row("many objects", n, setting, note=f"fits: {fits}; {errors[n]}"))
            results["objects"][n] = {"fits": False, "error": errors[n]}
            continue
        peak, _ = safe_peak_memory(steps[n], device)
        where = "GPU" if device.type == "cuda" else "RAM"
        fits_note = f"fits: yes, peak {fmt_bytes(peak)} of {fmt_bytes(total)} {where}"
        fits_note = join_notes(fits_note, budget_note(times, n, runs))
        rows.append(
            Row("many objects", n, setting, times[n], medians[n], ratio_to(medians, n, BASELINE),
                BASELINE, args.train_batch / medians[n], peak, fits_note)
        )  # fmt: skip
        results["objects"][n] = {"fits": True, "peak": peak, "step_s": medians[n], "total": total}
    for step in steps.values():
        step.optimizer.zero_grad(set_to_none=True)
        step.optimizer.state.clear()


def bench_assigner(args, device, rows: List[Row], results: dict, deadline=None):
    results["assigner"] = []
    baseline = "ATSS (IoU)"
    cases = [(size, num_gt) for size in args.assigner_sizes for num_gt in args.assigner_objects]
    for k, ((h, w), num_gt) in enumerate(cases):
        inputs = assigner_inputs(h, w, num_gt, device, seed=args.seed)
        num_anchors = inputs["anchors"].shape[0]
        setting = f"{h}x{w} ({num_anchors} anchors), {num_gt} GT"
        log(f"[assigner] {setting}")
        modules = assigners()
        fns = {n: (lambda a=a: call_assigner(a, inputs)) for n, a in modules.items()}
        times, errors = interleaved_times(
            fns, device, warmup=args.warmup, runs=args.runs,
            deadline=share_of_time(deadline, 1, len(cases) - k), reserve_rounds=1,
        )  # fmt: skip
        log_errors(errors)
        medians = {n: median(t) for n, t in times.items()}
        for n in modules:
            if n in errors:
                rows.append(Row("assigner (1 image)", n, setting, note=errors[n]))
                continue
            known = [v for v in inputs.values() if torch.is_tensor(v)]
            peak = peak_memory_bytes(fns[n], device, known=known)
            note = "per call; DDOD makes 2 calls per image" if n != baseline else ""
            note = join_notes(note, budget_note(times, n, args.runs))
            rows.append(
                Row("assigner (1 image)", n, setting, times[n], medians[n],
                    ratio_to(medians, n, baseline), f"{baseline} assigner, same input",
                    None, peak, note)
            )  # fmt: skip
            results["assigner"].append(
                {"assigner": n, "size": [h, w], "num_gt": num_gt, "median_s": medians[n],
                 "peak": peak}  # fmt: skip
            )


# ----------------------------------------------------------------------------------------------
# time budget
# ----------------------------------------------------------------------------------------------
def section_weights(args, bf16_rows: bool) -> Dict[str, float]:
    """Rough cost of each section, in training steps of one model, for its share of the time
    budget: warm-up and timed calls, and the peak-memory passes."""
    n = len(args.models)
    w, r, tr = args.warmup, args.runs, args.throughput_runs
    infer_images = n * ((w + r) + args.infer_batch * (w + tr))
    return {
        "train": n * (w + r + PEAK_PASS_IN_STEPS),
        "share": 2 * (w + r),
        "objects": 2 * (min(w, 1) + min(r, 3) + PEAK_PASS_IN_STEPS),
        # bf16 rows (where they run) take about half the time of the fp32 ones
        "infer": INFER_IMAGE_IN_STEPS * infer_images * (1.5 if bf16_rows else 1.0),
        "assigner": 0.15 * len(args.assigner_sizes) * len(args.assigner_objects),
    }


def budget_summary(args, rows: List[Row]) -> str:
    """For the header: the budget, and how many figures it cut short."""
    if not args.time_budget:
        return ""
    cut = sum("(time budget)" in r.note for r in rows)
    cut_text = f"; {cut} figures got fewer runs than asked (see notes)" if cut else ""
    return f" (time budget {args.time_budget:.0f} s{cut_text})"


# ----------------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------------
def _status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def compute_targets(args, device, results) -> List[Target]:
    targets = []
    name = f"DDOD/ATSS training step time <= {TARGET_TRAIN}"
    train = results.get("train", {}).get("medians", {})
    r = ratio_to(train, "DDOD", BASELINE)
    if r is None:
        targets.append(Target(name, "N/A", "not measured"))
    else:
        measured = f"{r:.3f} (fp32, batch {args.train_batch})"
        targets.append(Target(name, _status(r <= TARGET_TRAIN), measured))

    for (precision, bs), res in results.get("infer", {}).items():
        label = precision_label(device, precision)
        name = f"DDOD/ATSS inference time <= {TARGET_INFER} ({label}, batch {bs})"
        r = ratio_to(res["medians"], "DDOD", BASELINE)
        if r is None:
            targets.append(Target(name, "N/A", res.get("skipped") or "not measured"))
        else:
            targets.append(Target(name, _status(r <= TARGET_INFER), f"{r:.3f}"))
    if "infer" not in results:
        targets.append(Target(f"DDOD/ATSS inference time <= {TARGET_INFER}", "N/A", "not measured"))

    name = (
        f"assignment <= {TARGET_SHARE:.0%} of DDOD's training step at {args.share_objects} GT/img"
    )
    share = results.get("share", {}).get("DDOD")
    if share is None:
        targets.append(Target(name, "N/A", "not measured"))
    else:
        targets.append(
            Target(name, _status(share["share"] <= TARGET_SHARE),
                   f"{100 * share['share']:.1f}% "
                   f"(label_anchors {fmt_time(share['label_anchors_s'])} "
                   f"of {fmt_time(share['step_s'])}; assigner modules alone "
                   f"{100 * share['assigner_share']:.1f}%)")
        )  # fmt: skip

    name = f"{args.max_objects} GT/img fit in memory (DDOD training step)"
    obj = results.get("objects", {}).get("DDOD")
    if obj is None:
        targets.append(Target(name, "N/A", "not measured"))
    elif not obj["fits"]:
        targets.append(Target(name, "FAIL", obj.get("error", "")))
    else:
        targets.append(
            Target(name, "PASS", f"peak {fmt_bytes(obj['peak'])} of {fmt_bytes(obj['total'])}, "
                   f"step {fmt_time(obj['step_s'])}")
        )  # fmt: skip

    for (precision, bs), res in results.get("infer", {}).items():
        if bs == 1:
            continue
        label = precision_label(device, precision)
        name = f"GPU: DDOD inference throughput >= detectron2 FCOS ({label}, batch {bs})"
        med = res["medians"]
        if "DDOD" not in med or "FCOS" not in med:
            targets.append(Target(name, "N/A", res.get("skipped") or "not measured"))
            continue
        r = med["FCOS"] / med["DDOD"]  # throughput ratio DDOD / FCOS
        measured = (
            f"DDOD/FCOS throughput {r:.3f} "
            f"({bs / med['DDOD']:.2f} vs {bs / med['FCOS']:.2f} img/s)"
        )
        if device.type != "cuda":
            targets.append(Target(name, "N/A", f"GPU target, measured on the CPU: {measured}"))
        else:
            targets.append(Target(name, _status(r >= 1.0), measured))
    return targets


# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = get_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine; run with --device cpu.", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.manual_seed(args.seed)
    spec = BACKBONES[args.backbone]
    load_before = load_average()
    t_start, cpu_start = time.perf_counter(), time.process_time()
    budget = TimeBudget(args.time_budget)
    weights = section_weights(args, mixed_precision_skip_reason(device) is None)
    order = [s for s in ("train", "share", "objects", "infer", "assigner") if s in args.sections]

    def deadline(section):  # this section's share of the time left, by the weights to come
        left = sum(weights[s] for s in order[order.index(section):])
        return budget.deadline(weights[section], left)

    rows: List[Row] = []
    results: dict = {}
    loads = [load_before]
    sources: Dict[str, str] = {}
    model_sections = {"train", "infer", "share", "objects"} & set(args.sections)
    if model_sections:
        log(f"building {args.models} on {device} ({spec.describe()})")
        models, sources = build_models(spec, device, names=args.models, seed=args.seed)
        sections = {"train": bench_train, "share": bench_share, "objects": bench_many_objects,
                    "infer": bench_infer}  # fmt: skip
        for section in order:
            if section in sections:
                sections[section](models, args, device, rows, results, deadline=deadline(section))
                loads.append(load_average())
        del models
    if "assigner" in args.sections:
        bench_assigner(args, device, rows, results, deadline=deadline("assigner"))
        loads.append(load_average())
    aps_text = None
    if "aps" in args.sections:  # MOD's APS: its own tables (benchmarks/aps.py)
        from . import aps as aps_bench

        aps_text = aps_bench.section(device, args)
        loads.append(load_average())

    elapsed = time.perf_counter() - t_start
    elapsed_cpu = time.process_time() - cpu_start
    targets = compute_targets(args, device, results)

    h, w = args.size
    out = []
    quick = ", quick" if args.quick else ""
    out.append(f"## DDOD benchmarks ({args.device}, preset {args.preset}{quick})")
    out.append("")
    for line in machine_description(device):
        out.append(f"- {line}")
    out.append(
        f"- models: {spec.describe()}, random weights (last norm of each residual branch x0.1, "
        f"so activations stay in range); {h}x{w} images; train batch {args.train_batch}, "
        f"{args.num_gt} random GT/img; inference batches 1 and {args.infer_batch}; "
        f"post-processing load: {args.postprocess}"
    )
    for name, source in sources.items():
        out.append(f"- {name}: {source}")
    tp_runs = ""
    if args.throughput_runs != args.runs:
        tp_runs = f" ({args.throughput_runs} for batch {args.infer_batch} inference)"
    out.append(
        f"- each figure: median of {args.runs} runs{tp_runs} after {args.warmup} warm-up run(s), "
        f"models interleaved; spread = (max - min) / median; time / baseline < 1 is faster"
    )
    if load_before is not None:
        # Our own process adds up to torch's thread count to the load while it runs.
        cpus = os.cpu_count() or 1
        seen = [x for x in loads if x is not None]
        own = min(torch.get_num_threads(), cpus) if device.type == "cpu" else 1
        others = max(load_before, max(seen) - own)
        busy = ""
        if others > 0.5 * cpus:
            busy = " (other work on the machine: timings noisy"
            spinning = torch.get_num_threads() > 1 and "OMP_WAIT_POLICY" not in os.environ
            if device.type == "cpu" and spinning:
                busy += "; spinning OpenMP threads suffer most: set OMP_WAIT_POLICY=PASSIVE"
                busy += " or use --threads 1"
            busy += ")"
        out.append(
            f"- 1-min load average {load_before:.2f} before the run, "
            f"{min(seen):.2f}-{max(seen):.2f} between sections, {cpus} CPUs{busy}"
        )
    out.append(
        f"- wall time of the benchmark: {elapsed:.0f} s, CPU time {elapsed_cpu:.0f} s"
        f"{budget_summary(args, rows)}"
    )
    out.append("")
    out.append(render_table(rows))
    out.append("")
    out.append(
        "peak mem: persistent state (parameters, buffers, optimizer state) + peak of the tensors "
        "allocated during the call; CUDA: max_memory_allocated, CPU: tensor storages tracked "
        "through a TorchDispatchMode (kernel scratch space and allocator caches excluded)."
    )
    out.append("")
    out.append("Targets (issue 5), computed from the figures above:")
    out.append("")
    out.append("```")
    out.append(render_targets(targets))
    out.append("```")
    if aps_text:
        out += ["", aps_text]
    print("\n".join(out), flush=True)

    if args.json:
        payload = {
            "args": {k: v for k, v in vars(args).items()},
            "machine": machine_description(device),
            "rows": [dict(vars(r), spread=r.spread) for r in rows],
            "targets": [vars(t) for t in targets],
            "elapsed_s": elapsed,
            "cpu_s": elapsed_cpu,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
