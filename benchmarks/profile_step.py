"""Profile DDOD's training step and print where the time goes, next to the ATSS baseline.

    python -m benchmarks.profile_step       # CPU, R50, 320x512, batch 2, 8 and 100 GT/img
    python -m benchmarks.profile_step --num-gt 100 --steps 3 --trace /tmp/ddod_trace.json
    python -m benchmarks.profile_step --device cuda --size 800x1333

Printed, for each number of GT per image:

1. the phases of one step (preprocess, backbone, head, anchors, the assignment of each branch,
   box decoding, losses, backward, optimizer), for DDOD and for the ATSS baseline side by side
   (``--compare none`` profiles DDOD alone), from ``torch.profiler`` ranges;
2. DDOD's top ops by self time, overall and inside assignment, losses, head and backward;
3. the host-device synchronisation points of one DDOD step: ops that make the host wait for the
   device on CUDA (``nonzero`` and boolean-mask indexing, ``.item()``/``bool()`` of a tensor,
   ``repeat_interleave`` with tensor repeats, ``bincount``, device-to-host copies, ...), recorded
   by a ``TorchDispatchMode`` with the line of project code that issued each one (on the CPU
   they cost little, but they show where CUDA would wait);
4. the project's Python functions by cumulative time, with call counts (cProfile, forward
   only: per-image and per-level loops show up as call counts).

Then ``CostATSSAssigner`` alone, on the real anchors of ``--assigner-size``, split into candidate
selection, cost and the rest, at ``--assigner-objects`` GT.
"""
import argparse
import cProfile
import collections
import os
import pstats
import sys
import time
import traceback
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import torch  # noqa: E402
from torch.autograd.profiler import record_function  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import ddod  # noqa: E402,F401
from detectron2.utils.events import EventStorage  # noqa: E402

from .assigner import assigner_inputs, call_assigner  # noqa: E402
from .common import synchronize  # noqa: E402
from .models import BACKBONES, build_models, make_batch  # noqa: E402
from .run import TrainStep, parse_size  # noqa: E402

PROJECT_MARK = os.sep + os.path.join("projects", "DDOD") + os.sep
D2_MARK = os.sep + "detectron2" + os.sep
PHASES = [
    "step", "preprocess", "backbone", "head", "anchors", "assign",
    "assigner module", "decode", "losses", "backward", "optimizer",
]  # fmt: skip
OTHER = "step (other)"
# Ops whose output size depends on the data, so CUDA must finish them before the host goes on.
SIZE_DEPENDENT_OPS = (
    "equal", "masked_select", "bincount", "_unique2", "unique_dim", "unique_consecutive",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# phases
# ----------------------------------------------------------------------------------------------
class Phases:
    """Adds ``record_function`` ranges around the detector's parts without touching the model
    code: forward hooks on submodules, instance attributes over methods."""

    def __init__(self, model):
        self.model = model
        self._hooks = []
        self._patched = []

    def _hook_module(self, module, name):
        stack = []

        def pre(mod, inputs):
            rf = record_function(name)
            rf.__enter__()
            stack.append(rf)

        def post(mod, inputs, output):
            stack.pop().__exit__(None, None, None)

        self._hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def _wrap_method(self, attr, name_fn):
        original = getattr(self.model, attr)

        def wrapped(*args, **kwargs):
            with record_function(name_fn(args)):
                return original(*args, **kwargs)

        setattr(self.model, attr, wrapped)
        self._patched.append(attr)

    def __enter__(self):
        m = self.model
        self._hook_module(m.backbone, "backbone")
        self._hook_module(m.head, "head")
        self._hook_module(m.anchor_generator, "anchors")
        assigners = {id(a): a for a in (m.cls_assigner, m.reg_assigner) if a is not None}
        for assigner in assigners.values():
            self._hook_module(assigner, "assigner module")
        self._wrap_method("preprocess_image", lambda a: "preprocess")
        self._wrap_method(
            "label_anchors",
            lambda a: "assign",  # both branches' assignment (one call)
        )
        self._wrap_method("_decode", lambda a: "decode")
        self._wrap_method("losses", lambda a: "losses")
        return self

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        for attr in self._patched:
            delattr(self.model, attr)


def profiled_step(step: TrainStep):
    step.model.train()
    with record_function("step"):
        step.optimizer.zero_grad(set_to_none=True)
        with EventStorage():
            losses = step.model(step.batch)
        loss = sum(losses.values())
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            step.optimizer.step()


def _is_op(event) -> bool:
    """A C++ op or kernel, not a Python function event of the stack tracer or a range."""
    name = event.name
    return not (name in PHASES or ".py(" in name or name.startswith("<"))


def _phase_of(event):
    e = event.cpu_parent
    while e is not None:
        if e.name in PHASES:
            return OTHER if e.name == "step" else e.name
        e = e.cpu_parent
    return None


def profile_model(model, batch, args, device):
    step = TrainStep(model, batch)
    for _ in range(args.warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    step()
    synchronize(device)
    unprofiled = time.perf_counter() - t0
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with Phases(model), profile(activities=activities, record_shapes=False) as prof:
        for _ in range(args.steps):
            profiled_step(step)
        synchronize(device)
    return step, prof, unprofiled


def phase_times(prof, steps):
    """{phase: (ms per step, calls per step)} from the profiler ranges."""
    t, n = collections.defaultdict(float), collections.Counter()
    for e in prof.events():
        if e.name in PHASES:
            t[e.name] += e.cpu_time_total
            n[e.name] += 1
    return {k: (t[k] / steps / 1e3, n[k] / steps) for k in t}


def print_phases(results, device):
    names = list(results)
    print("\nPhases: host wall time per step (ms), from torch.profiler ranges")
    if device.type == "cuda":
        print("  on CUDA, host times of asynchronous work are launch times (see the device times)")
    header = f"  {'phase':<16}" + "".join(f" {n + ' ms':>12} {'%':>6}" for n in names)
    if len(names) == 2:
        header += f" {names[0] + '-' + names[1]:>16}"
    print(header)
    for phase in PHASES:
        if not any(phase in r["phases"] for r in results.values()):
            continue
        line = f"  {phase:<16}"
        vals = []
        for n in names:
            ph = results[n]["phases"]
            step_ms = ph["step"][0]
            ms = ph.get(phase, (0.0, 0))[0]
            vals.append(ms)
            line += f" {ms:>12.1f} {100 * ms / step_ms:>5.1f}%"
        if len(names) == 2:
            line += f" {vals[0] - vals[1]:>+16.1f}"
        print(line)
    print("  assigner module and decode lie inside assign; decode is also called inside losses")
    for n in names:
        ph = results[n]["phases"]
        print(
            f"  {n}: unprofiled step {1e3 * results[n]['unprofiled']:.1f} ms; assigner calls/step "
            f"{ph.get('assigner module', (0, 0))[1]:.0f}, decode calls/step "
            f"{ph.get('decode', (0, 0))[1]:.0f}"
        )


def print_ops(prof, steps, top, device):
    by_op = collections.defaultdict(lambda: [0.0, 0.0, 0])
    by_phase = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0]))
    for e in prof.events():
        if not _is_op(e):
            continue
        dev = getattr(e, "self_device_time_total", 0) or 0
        rec = by_op[e.name]
        rec[0] += e.self_cpu_time_total
        rec[1] += dev
        rec[2] += 1
        phase = _phase_of(e)
        if phase:
            r = by_phase[phase][e.name]
            r[0] += e.self_cpu_time_total + dev
            r[1] += 1
    per = 1.0 / steps
    total = sum(v[0] for v in by_op.values()) or 1.0
    cuda = device.type == "cuda"
    print(f"\nDDOD: top {top} ops by self CPU time (per step)")
    print(f"  {'op':<42} {'ms':>9} {'%':>6} {'calls':>6}" + (f" {'device ms':>10}" if cuda else ""))
    for name, (t, dev, n) in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:top]:
        extra = f" {dev * per / 1e3:>10.1f}" if cuda else ""
        print(
            f"  {name[:42]:<42} {t * per / 1e3:>9.2f} {100 * t / total:>5.1f}% "
            f"{n * per:>6.0f}{extra}"
        )
    for phase in ("assign", "losses", OTHER, "head", "backward"):
        ops = by_phase.get(phase)
        if not ops:
            continue
        tot = sum(v[0] for v in ops.values())
        count = sum(v[1] for v in ops.values())
        print(
            f"\n  inside {phase}: {tot * per / 1e3:.1f} ms/step of op self time in "
            f"{count * per:.0f} ops; top 8:"
        )
        for name, (t, n) in sorted(ops.items(), key=lambda kv: -kv[1][0])[:8]:
            print(f"    {name[:42]:<42} {t * per / 1e3:>8.2f} ms {n * per:>6.0f} calls")


# ----------------------------------------------------------------------------------------------
# host-device synchronisations
# ----------------------------------------------------------------------------------------------
def _has_bool_index(indices) -> bool:
    masks = (torch.bool, torch.uint8)
    return any(isinstance(i, torch.Tensor) and i.dtype in masks for i in (indices or []))


def sync_reason(func, args, kwargs):
    """Why this op makes the host wait for a CUDA device (None if it does not)."""
    name = func.overloadpacket.__name__
    overload = func._overloadname
    if name == "nonzero":
        return "nonzero"
    if name == "_local_scalar_dense":
        return ".item() / bool() / int() / float()"
    if name == "is_nonzero":
        return "bool(tensor)"
    if name in SIZE_DEPENDENT_OPS:
        return name
    if name == "repeat_interleave" and "int" not in overload and kwargs.get("output_size") is None:
        return "repeat_interleave(tensor repeats)"
    if name == "index" and len(args) > 1 and _has_bool_index(args[1]):
        return "boolean-mask indexing"
    index_puts = ("index_put", "index_put_", "_index_put_impl_")
    if name in index_puts and len(args) > 1 and _has_bool_index(args[1]):
        return "boolean-mask assignment"
    if name in ("_to_copy", "copy_"):
        src = args[1] if name == "copy_" else args[0]
        dst_device = args[0].device if name == "copy_" else kwargs.get("device")
        if isinstance(src, torch.Tensor) and src.device.type == "cuda" and dst_device is not None:
            if torch.device(dst_device).type == "cpu":
                return "device-to-host copy"
    return None


def _call_site() -> str:
    stack = traceback.extract_stack()[:-3]
    for mark in (PROJECT_MARK, D2_MARK):
        for frame in reversed(stack):
            if mark in frame.filename and "benchmarks" not in frame.filename:
                short = frame.filename.split(mark)[-1]
                prefix = "" if mark == PROJECT_MARK else "detectron2/"
                code = (frame.line or "").strip()
                return f"{prefix}{short}:{frame.lineno} {frame.name}: {code[:70]}"
    return "(autograd backward or outside project code)"


class SyncRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.sites = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = sync_reason(func, args, kwargs)
        if reason is not None:
            self.sites[(reason, _call_site())] += 1
        return func(*args, **kwargs)


def print_syncs(step: TrainStep, top: int):
    with SyncRecorder() as rec:
        step()
    total = sum(rec.sites.values())
    print(f"\nDDOD: host-device synchronisation points in one training step: {total} "
          "(each one a device sync on CUDA)")  # fmt: skip
    print(f"  {'count':>5}  {'kind':<34} call site")
    for (reason, site), n in rec.sites.most_common(top):
        print(f"  {n:>5}  {reason:<34} {site}")


# ----------------------------------------------------------------------------------------------
# python
# ----------------------------------------------------------------------------------------------
def print_python(step: TrainStep, top: int):
    pr = cProfile.Profile()
    pr.enable()
    step()
    pr.disable()
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, callers) in pstats.Stats(pr).stats.items():
        for mark, prefix in ((PROJECT_MARK, ""), (D2_MARK, "detectron2/")):
            if mark in filename:
                rows.append((ct, tt, nc, f"{prefix}{filename.split(mark)[-1]}:{line} {func}"))
                break
    print("\nDDOD, Python side of one step (cProfile; the backward runs in C++ and is not listed)")
    print(f"  {'cum ms':>8} {'own ms':>8} {'calls':>6}  function")
    for ct, tt, nc, name in sorted(rows, reverse=True)[:top]:
        print(f"  {ct * 1e3:>8.1f} {tt * 1e3:>8.1f} {nc:>6}  {name}")


# ----------------------------------------------------------------------------------------------
# the assigner alone
# ----------------------------------------------------------------------------------------------
def profile_assigner(device, size, counts, runs=3):
    from ddod.modeling import CostATSSAssigner

    h, w = size
    print(
        f"\nCostATSSAssigner alone (one call), {h}x{w} image, real P3-P7 anchors, "
        f"mean of {runs} calls"
    )
    print(
        f"  {'GT':>5} {'total ms':>9} {'select_candidates':>20} {'candidate_quality':>20} "
        f"{'rest':>6}"
    )
    for m in counts:
        inputs = assigner_inputs(h, w, m, device)
        a = CostATSSAssigner(alpha=0.8)
        acc = collections.Counter()
        for name in ("select_candidates", "candidate_quality"):
            original = getattr(a, name)

            def timed(*args, _orig=original, _name=name, **kwargs):
                synchronize(device)
                t0 = time.perf_counter()
                out = _orig(*args, **kwargs)
                synchronize(device)
                acc[_name] += time.perf_counter() - t0
                return out

            setattr(a, name, timed)
        call_assigner(a, inputs)  # warm-up
        acc.clear()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(runs):
            call_assigner(a, inputs)
        synchronize(device)
        total = (time.perf_counter() - t0) / runs
        sel, cost = acc["select_candidates"] / runs, acc["candidate_quality"] / runs
        rest = 100 * (total - sel - cost) / total
        print(
            f"  {m:>5} {total * 1e3:>9.2f} {sel * 1e3:>12.2f} ({100 * sel / total:>3.0f}%) "
            f"{cost * 1e3:>12.2f} ({100 * cost / total:>3.0f}%) {rest:>5.0f}%"
        )


def main(argv=None):
    p = argparse.ArgumentParser(description="Profile DDOD's training step.")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="R50")
    p.add_argument("--size", default="320x512")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--num-gt", type=int, nargs="+", default=[8, 100])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="profiled steps per model and GT count")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--compare", choices=["ATSS", "none"], default="ATSS")
    p.add_argument("--trace", help="write a Chrome trace of the last DDOD profile here")
    p.add_argument("--no-python", action="store_true", help="skip the cProfile part")
    p.add_argument("--assigner-size", default="800x1333")
    p.add_argument("--assigner-objects", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine; use --device cpu.")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = parse_size(args.size)
    spec = BACKBONES[args.backbone]
    names = ["DDOD"] + ([args.compare] if args.compare != "none" else [])
    models, _ = build_models(spec, device, names=names)
    print(f"{spec.describe()}, {h}x{w}, batch {args.batch}, {device}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}; load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    for num_gt in args.num_gt:
        print(f"\n{'=' * 100}\n{num_gt} GT per image")
        batch = make_batch(args.batch, h, w, num_gt, device, seed=num_gt)
        results = {}
        for name in names:
            step, prof, unprofiled = profile_model(models[name], batch, args, device)
            results[name] = {"step": step, "prof": prof, "unprofiled": unprofiled,
                             "phases": phase_times(prof, args.steps)}  # fmt: skip
        print_phases(results, device)
        ddod_result = results["DDOD"]
        print_ops(ddod_result["prof"], args.steps, args.top, device)
        if args.trace:
            ddod_result["prof"].export_chrome_trace(args.trace)
        print_syncs(ddod_result["step"], args.top)
        if not args.no_python:
            print_python(ddod_result["step"], args.top)
    if args.assigner_objects:
        profile_assigner(device, parse_size(args.assigner_size), args.assigner_objects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
