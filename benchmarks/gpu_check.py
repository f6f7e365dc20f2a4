"""Every CUDA path of the project and the COCO-size performance table, in one prepared run.

    python -m benchmarks.gpu_check                      # on one GPU: about 10 minutes
    python -m benchmarks.gpu_check --dry-run            # the same sequence on the CPU, tiny sizes
    python -m benchmarks.gpu_check --out $OUT/gpu_check.json --budget 540

The sections, in order (``--sections`` picks some):

* ``heads``: the head of every method (every ``configs/common/models/*.py`` that defines
  ``model``, so a new method joins by adding its model file), forward and backward with the
  same weights, inputs and output gradients on the CPU (fp32, the reference) and on CUDA (fp32,
  TF32 off): every output and every gradient within ``--tol`` of the reference (max abs error /
  max abs reference); then under fp16 autocast on CUDA: no dtype error, finite outputs and
  gradients (the error to the reference is printed, not judged). Zero-initialised convs (the
  deformable convs' offset convs) and the norms' affine parameters get random values first, so
  deformable sampling points are fractional and no ReLU input sits at exactly zero.
  Dry run: CPU fp32 against CPU float64, and bf16 autocast on the CPU.
* ``sync``: one DDOD training step (R-50, 800x1333, 2 images, after a warm-up step) with
  ``torch.cuda.set_sync_debug_mode("warn")``: every host-device synchronisation with its call
  site and the phase it happens in (``assignment`` = ``DDOD.label_anchors``, ``losses`` =
  ``DDOD.losses``, ``other`` = backbone, head, backward). Dry run: the same step on the CPU,
  reported as skipped (the debug mode only sees CUDA synchronisations).
* ``benchmark``: ``python -m benchmarks.run --device cuda --preset coco`` (R-50, 800x1333) with
  the sections ``train`` and ``infer``: train step time and peak memory at 2 images, inference
  latency (batch 1) and throughput (batch 8) in fp32 and fp16 autocast, for DDOD, ATSS,
  VFNet, Detectron2's FCOS and RetinaNet and every other model file of the project; medians
  after warm-up, ratios to ATSS of the same run. Dry run: ``--device cpu --preset tiny``.
* ``train_net``: ``train_net.py --num-gpus 1 --config-file configs/quickstart/ddod_digits_cpu.py
  train.amp.enabled=True train.device=cuda`` for ``--digits-iters`` iterations: losses finite,
  ``model_final.pth`` written, the evaluation ran (bbox AP in metrics.json). Dry run: on the CPU
  (where ``train.amp.enabled`` means bf16 autocast, or fp32 with a warning without native bf16).

Everything goes to one JSON (``--out``) and one printed Markdown report, with the issue's
targets (DDOD/ATSS train step <= 1.08, inference <= 1.05, DDOD fp16 throughput >= Detectron2
FCOS's, DDOD train memory at 2 images of 800x1333 <= 3.4 GiB, MMDetection's published 3.4 "GB"
being MiB / 1024) as PASS/FAIL on CUDA and "n/a (dry run)" otherwise.

Exit status: 0 if every correctness check (heads, train_net, no section crashed) passed; 1
otherwise. Targets and synchronisations are figures to report, not failures.
"""
import argparse
import contextlib
import copy
import datetime
import glob
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from typing import Dict, List, Optional

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import torch  # noqa: E402

import ddod  # noqa: E402,F401  (compat patches before any detectron2 part)
from detectron2.config import LazyConfig, instantiate  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "configs", "common", "models")
DIGITS_CONFIG = os.path.join("configs", "quickstart", "ddod_digits_cpu.py")
SECTIONS = ("heads", "sync", "benchmark", "train_net")

# The targets
TARGET_TRAIN = 1.08
TARGET_INFER = 1.05
TARGET_MEMORY_GIB = 3.4  # MMDetection's DDOD R-50 figure (its logs' MiB / 1024)

# Sizes: on the GPU the real head width and a P3 map of a 512x768 image; the dry run is tiny.
PRESETS = {
    "cuda": dict(
        channels=None, p3="64x96", batch=2, sync_size="800x1333", sync_backbone="R50",
        bench_preset="coco", bench_warmup=3, bench_runs=10, digits_iters=300,
        digits_eval_images=0, budget=600,
    ),  # fmt: skip
    "dry": dict(
        # 64, not 32: with GN(32) at 32 channels a conv bias right before the norm (MOD's RFA)
        # has an analytically zero gradient, whose rounding noise no relative tolerance passes
        channels=64, p3="16x24", batch=2, sync_size="128x192", sync_backbone="tiny",
        bench_preset="tiny", bench_warmup=0, bench_runs=1, digits_iters=4,
        digits_eval_images=4, budget=600,
    ),  # fmt: skip
}
# Rough shares of the budget left when a subprocess starts (the rest is kept for what follows).
BENCH_SHARE = 0.7


_T0 = time.perf_counter()


def log(msg: str):
    print(f"[gpu_check {time.perf_counter() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str):
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are HEIGHTxWIDTH, e.g. 64x96; got {text!r}")


# ----------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------
def method_configs(models_dir: str = MODELS_DIR) -> Dict[str, object]:
    """{file stem: model LazyConfig} of every model definition file: each ``*.py`` in
    ``configs/common/models/`` that defines ``model``; helper files (backbones.py,
    disentangle.py) define none and are left out. New methods join without a list to edit."""
    found = {}
    for path in sorted(glob.glob(os.path.join(models_dir, "*.py"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem.startswith("_"):
            continue
        try:
            cfg = LazyConfig.load(path)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"cannot load the model file {path}: {e}") from e
        if "model" in cfg:
            found[stem] = cfg.model
    return found


# ----------------------------------------------------------------------------------------------
# heads: CUDA (or float64 in the dry run) against the CPU
# ----------------------------------------------------------------------------------------------
def build_head(model_cfg, channels: Optional[int], seed: int = 0) -> torch.nn.Module:
    """The head of a model config, at ``channels`` (None: as configured), with the random
    parameters described in the module docstring."""
    cfg = copy.deepcopy(model_cfg)
    head_cfg = cfg.head
    if channels is not None:
        if "input_shape" in head_cfg:
            head_cfg.input_shape = [ShapeSpec(channels=channels)] * len(head_cfg.input_shape)
        if "conv_dims" in head_cfg:
            head_cfg.conv_dims = channels
    torch.manual_seed(seed)
    head = instantiate(head_cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
                # zero-initialised (offset convs): offsets of a few pixels, fractional, some
                # pointing outside the map; at integer positions two correct kernels may differ
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 2.0 / fan_in**0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 3.0 - 1.5)
            elif isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d)) and m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
        for name, p in head.named_parameters():
            if name.endswith("scale") and p.numel() == 1:  # per-level scales
                p.fill_(torch.rand(1, generator=g).item() + 0.5)
    return head


def head_inputs(head_cfg, channels: Optional[int], batch: int, p3, seed: int = 0):
    """Random FPN features, one per input level, P3 at ``p3`` and halved per level."""
    shapes = head_cfg.input_shape if "input_shape" in head_cfg else [None] * 5
    g = torch.Generator().manual_seed(seed + 2)
    h, w = p3
    feats = []
    for i, s in enumerate(shapes):
        c = channels if channels is not None else s.channels
        feats.append(torch.randn(batch, c, max(1, h >> i), max(1, w >> i), generator=g))
    return feats


def flatten_outputs(out, prefix="out") -> Dict[str, torch.Tensor]:
    """Every tensor of a head's output (nested tuples, lists, dicts), by a path name."""
    if torch.is_tensor(out):
        return {prefix: out}
    items = out.items() if isinstance(out, dict) else enumerate(out or [])
    flat = {}
    for k, v in items:
        flat.update(flatten_outputs(v, f"{prefix}/{k}"))
    return flat


def run_head(head, features, device, dtype, autocast_dtype=None) -> Dict[str, torch.Tensor]:
    """Forward and backward of a copy of ``head`` on ``device`` in ``dtype`` (optionally under
    autocast), with fixed random output gradients; {name: output or gradient}."""
    head = copy.deepcopy(head).to(device=device, dtype=dtype)
    feats = [f.to(device=device, dtype=dtype).requires_grad_() for f in features]
    ctx = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with ctx:
        outputs = flatten_outputs(head(feats))
    loss = 0
    for i, (name, o) in enumerate(outputs.items()):
        if not o.is_floating_point():
            continue
        grad = torch.randn(o.shape, generator=torch.Generator().manual_seed(1000 + i))
        loss = loss + (o.double() * grad.to(device=device, dtype=torch.float64)).sum()
    loss.backward()
    named = dict(outputs)
    for i, f in enumerate(feats):
        named[f"grad/input/{i}"] = f.grad
    for name, p in head.named_parameters():
        if p.requires_grad:
            named[f"grad/{name}"] = p.grad if p.grad is not None else torch.zeros_like(p)
    return named


def rel_error(target: torch.Tensor, ref: torch.Tensor) -> float:
    target = target.detach().double().cpu()
    ref = ref.detach().double().cpu()
    if target.shape != ref.shape:
        return math.inf
    scale = ref.abs().max().item() if ref.numel() else 0.0
    diff = (target - ref).abs().max().item() if ref.numel() else 0.0
    return diff / max(scale, 1e-12)


def check_heads(args, device, dry_run: bool) -> List[dict]:
    """One entry per method: the fp32 comparison and the mixed-precision run."""
    cpu = torch.device("cpu")
    if dry_run:
        ref_spec, tgt_spec = (cpu, torch.float64), (cpu, torch.float32)
        mixed = (cpu, torch.bfloat16)
        comparison = "CPU fp32 vs CPU float64 (dry run)"
    else:
        ref_spec, tgt_spec = (cpu, torch.float32), (device, torch.float32)
        mixed = (device, torch.float16)
        comparison = "CUDA fp32 vs CPU fp32"
    results = []
    for name, model_cfg in method_configs().items():
        entry = {"method": name, "comparison": comparison, "tol": args.tol}
        log(f"[heads] {name}: {comparison}")
        try:
            # A second draw of weights and inputs only if the first is over tolerance: a ReLU
            # input within rounding of zero (measured: |x| = 1.3e-7 in VFNet's P3 tower, dry
            # run seed 0) flips with the dtype and changes a gradient by ~1e-2, a property of
            # the draw, not of a kernel; a kernel bug fails every draw. Both draws are recorded.
            entry["draws"] = []
            for seed in range(args.draws):
                head = build_head(model_cfg, args.channels, seed=seed)
                feats = head_inputs(model_cfg.head, args.channels, args.batch, args.p3, seed=seed)
                ref = run_head(head, feats, *ref_spec)
                tgt = run_head(head, feats, *tgt_spec)
                errors = {k: rel_error(tgt[k], ref[k]) for k in ref}
                missing = sorted(set(ref) ^ set(tgt))
                worst = sorted(errors.items(), key=lambda kv: -kv[1])
                bad = [k for k, e in worst if not e <= args.tol] + missing
                entry["draws"].append({"seed": seed, "max_error": worst[0][1] if worst else 0.0,
                                       "worst": worst[:5], "over_tolerance": bad})  # fmt: skip
                if not bad:
                    break
            entry.update(
                head=type(head).__name__, inputs=[list(f.shape) for f in feats],
                tensors=len(errors), max_error=worst[0][1] if worst else 0.0,
                worst=worst[:5], over_tolerance=bad, fp32_ok=not bad, seed=seed,
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001
            entry.update(fp32_ok=False, error=f"{type(e).__name__}: {e}",
                         traceback=traceback.format_exc(limit=6))  # fmt: skip
            results.append(entry)
            continue
        mixed_label = f"{'fp16' if mixed[1] == torch.float16 else 'bf16'} autocast"
        entry["mixed"] = mixed_label
        try:
            out = run_head(head, feats, mixed[0], torch.float32, autocast_dtype=mixed[1])
            nonfinite = [k for k, t in out.items() if not torch.isfinite(t).all().item()]
            dtypes = sorted({str(t.dtype).replace("torch.", "") for k, t in out.items()
                             if k.startswith("out")})  # fmt: skip
            errs = sorted(((rel_error(out[k], ref[k]), k) for k in ref if k in out), reverse=True)
            entry.update(mixed_ok=not nonfinite, mixed_nonfinite=nonfinite,
                         mixed_output_dtypes=dtypes, mixed_max_error=errs[0][0] if errs else 0.0,
                         mixed_worst=[(k, e) for e, k in errs[:5]],
                         mixed_output_error=max((e for e, k in errs if k.startswith("out")),
                                                default=0.0))  # fmt: skip
        except Exception as e:  # noqa: BLE001
            entry.update(mixed_ok=False, mixed_error=f"{type(e).__name__}: {e}",
                         mixed_traceback=traceback.format_exc(limit=6))  # fmt: skip
        results.append(entry)
    return results


# ----------------------------------------------------------------------------------------------
# sync: host-device synchronisations of DDOD's assignment and losses
# ----------------------------------------------------------------------------------------------
class SyncCollector:
    """Records the warnings of ``torch.cuda.set_sync_debug_mode("warn")`` with the phase they
    happen in (the innermost :meth:`phase` entered) and their call site: the innermost frame of
    the project or of Detectron2 (the op that synchronised is on that line)."""

    SITE_ROOTS = (ROOT, os.sep + "detectron2" + os.sep)

    def __init__(self):
        self.events: List[dict] = []
        self.entered = set()  # the phases that ran, with or without synchronisations
        self._phases = ["other"]

    @contextlib.contextmanager
    def phase(self, name: str):
        self.entered.add(name)
        self._phases.append(name)
        try:
            yield
        finally:
            self._phases.pop()

    def wrap(self, obj, method: str, phase: str):
        """Shadow ``obj.method`` with an instance attribute that runs it inside ``phase``."""
        original = getattr(obj, method)

        def wrapped(*a, **kw):
            with self.phase(phase):
                return original(*a, **kw)

        setattr(obj, method, wrapped)
        return lambda: delattr(obj, method)

    def showwarning(self, message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if "synchroniz" not in text:
            return self._previous(message, category, filename, lineno, file, line)
        this_file = os.path.abspath(__file__)
        frames = [f for f in traceback.extract_stack()[:-1]
                  if any(r in f.filename for r in self.SITE_ROOTS) and f.filename != this_file]
        site = "?"
        if frames:
            f = frames[-1]
            path = os.path.relpath(f.filename, ROOT) if ROOT in f.filename else f.filename
            site = f"{path}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
        self.events.append({
            "phase": self._phases[-1],
            "message": text.splitlines()[0],
            "site": site,
            "stack": [f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in frames[-4:]],
        })  # fmt: skip

    @contextlib.contextmanager
    def capturing(self):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            self._previous = warnings.showwarning
            warnings.showwarning = self.showwarning
            try:
                yield self
            finally:
                warnings.showwarning = self._previous

    def summary(self) -> List[dict]:
        """One entry per (phase, call site), with its count, in order of first occurrence."""
        seen: Dict[tuple, dict] = {}
        for e in self.events:
            key = (e["phase"], e["site"])
            if key not in seen:
                seen[key] = {"phase": e["phase"], "site": e["site"], "count": 0,
                             "stack": e["stack"]}  # fmt: skip
            seen[key]["count"] += 1
        return list(seen.values())


def check_sync(args, device, dry_run: bool) -> dict:
    from .models import BACKBONES, build_models, make_batch

    h, w = args.sync_size
    spec = BACKBONES[args.sync_backbone]
    models, _ = build_models(spec, device, names=["DDOD"])
    model = models["DDOD"].train()
    batch = make_batch(2, h, w, 8, device, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    collector = SyncCollector()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with EventStorage():
            losses = model(batch)
        sum(losses.values()).backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    step()  # warm-up: lazy initialisation and caches are not the steady state
    undo = [collector.wrap(model, "label_anchors", "assignment"),
            collector.wrap(model, "losses", "losses")]  # fmt: skip
    result = {"setting": f"DDOD {spec.describe()}, 2 images {h}x{w}, 8 GT/img"}
    try:
        with collector.capturing():
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("warn")
            try:
                losses = step()
            finally:
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
    finally:
        for u in undo:
            u()
    result["losses"] = losses
    result["losses_finite"] = all(math.isfinite(v) for v in losses.values())
    result["phases_run"] = sorted(collector.entered)
    if device.type != "cuda":
        result["status"] = (
            "skipped on CPU: torch.cuda.set_sync_debug_mode reports CUDA synchronisations only "
            "(the step, its phases and the collector ran)"
        )
        result["syncs"] = None
        return result
    summary = collector.summary()
    result["syncs"] = summary
    result["counts"] = {p: sum(s["count"] for s in summary if s["phase"] == p)
                        for p in ("assignment", "losses", "other")}  # fmt: skip
    result["status"] = "ran"
    return result


# ----------------------------------------------------------------------------------------------
# benchmark and train_net: subprocesses
# ----------------------------------------------------------------------------------------------
def benchmark_models() -> List[str]:
    """The benchmark's own rows and every other model file of the project (as "<file>.py")."""
    from .models import MODEL_NAMES, project_model_files

    return list(MODEL_NAMES) + list(project_model_files())


def run_subprocess(cmd: List[str], timeout: float, log_path: str) -> dict:
    log(f"$ {' '.join(cmd)}  (timeout {timeout:.0f} s)")
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as f:
        try:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=max(timeout, 1), env=env)  # fmt: skip
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    with open(log_path) as f:
        text = f.read()
    return {"command": " ".join(cmd), "returncode": rc, "wall_s": time.perf_counter() - t0,
            "log": log_path, "tail": text[-3000:], "output": text}  # fmt: skip


def run_benchmark(args, device, out_dir: str, timeout: float) -> dict:
    report = os.path.join(out_dir, "benchmark.json")
    cmd = [
        sys.executable, "-m", "benchmarks.run", "--device", device.type,
        "--preset", args.bench_preset, "--sections", "train", "infer",
        "--warmup", str(args.bench_warmup), "--runs", str(args.bench_runs),
        "--time-budget", f"{max(1.0, timeout - 60):.0f}",  # model building and start-up
        "--models", *(args.bench_models or benchmark_models()), "--json", report,
    ]  # fmt: skip
    if device.type == "cpu":
        cmd += ["--threads", "1"]
    res = run_subprocess(cmd, timeout, os.path.join(out_dir, "benchmark.log"))
    table = res.pop("output")
    start = table.find("## DDOD benchmarks")
    res["table"] = table[start:].strip() if start >= 0 else ""
    res["ok"] = res["returncode"] == 0 and os.path.exists(report)
    res["rows"] = []
    if res["ok"]:
        with open(report) as f:
            res["rows"] = json.load(f)["rows"]
    return res


def read_metrics(path: str) -> List[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def digits_val_subset(out_dir: str, num_images: int):
    """The first ``num_images`` images of the digits validation split as a COCO json (the
    split is generated if needed): a short evaluation through train_net's --test-json."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    DatasetCatalog.get("digits_det_val")  # generates the split on first use
    meta = MetadataCatalog.get("digits_det_val")
    with open(meta.json_file) as f:
        coco = json.load(f)
    coco["images"] = coco["images"][:num_images]
    keep = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    path = os.path.join(out_dir, f"digits_val_first{num_images}.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    return path, meta.image_root


def run_train_net(args, device, out_dir: str, timeout: float) -> dict:
    run_dir = os.path.join(out_dir, "digits_amp")
    iters = args.digits_iters
    cmd = [sys.executable, "train_net.py", "--num-gpus", "1", "--config-file", DIGITS_CONFIG]
    if args.digits_eval_images:  # flags before the overrides
        json_file, image_root = digits_val_subset(out_dir, args.digits_eval_images)
        cmd += ["--test-json", json_file, "--test-images", image_root,
                "--dataset-name", "gpu_check_digits"]  # fmt: skip
    cmd += [
        "train.amp.enabled=True", f"train.device={device.type}", f"train.max_iter={iters}",
        f"train.output_dir={run_dir}", f"train.checkpointer.period={iters}",
        f"train.log_period={max(1, min(20, iters // 5))}", "train.eval_period=0",
    ]  # fmt: skip
    # The quickstart's schedule is in fractions of the run (warm-up 1/16, steps at 2/3 and 8/9),
    # so it needs no override at another length.
    res = run_subprocess(cmd, timeout, os.path.join(out_dir, "train_net.log"))
    output = res.pop("output")
    metrics = read_metrics(os.path.join(run_dir, "metrics.json"))
    losses = [m["total_loss"] for m in metrics if "total_loss" in m]
    ap = [m["bbox/AP"] for m in metrics if "bbox/AP" in m]
    # how the Trainer applied train.amp.enabled (AMPTrainer on CUDA; bf16 autocast or fp32 on a CPU)
    precision = [line.split("]: ", 1)[-1].strip() for line in output.splitlines()
                 if "train.amp.enabled" in line and "Command line" not in line]  # fmt: skip
    res.update(
        iterations=iters,
        losses_logged=len(losses),
        losses_finite=bool(losses) and all(math.isfinite(x) for x in losses),
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        checkpoint=os.path.exists(os.path.join(run_dir, "model_final.pth")),
        evaluated=bool(ap),
        bbox_ap=ap[-1] if ap else None,
        amp_log=precision[:2],
        amp_trainer=("AMPTrainer" in output) if device.type == "cuda" else None,
    )
    res["ok"] = (res["returncode"] == 0 and res["losses_finite"] and res["checkpoint"]
                 and res["evaluated"])  # fmt: skip
    return res


# ----------------------------------------------------------------------------------------------
# targets and report
# ----------------------------------------------------------------------------------------------
def find_row(rows, section, model, setting_prefix="", setting_has=""):
    for r in rows:
        if (r["section"] == section and r["model"] == model
                and r["setting"].startswith(setting_prefix) and setting_has in r["setting"]):
            return r
    return None


def compute_targets(rows: List[dict], on_cuda: bool) -> List[dict]:
    """The issue's four targets from the benchmark rows; status PASS/FAIL on CUDA, else
    "n/a (dry run)" with the figure still shown."""
    targets = []

    def add(name, value, ok, measured):
        if value is None:
            status = "not measured"
        else:
            status = ("PASS" if ok else "FAIL") if on_cuda else "n/a (dry run)"
        targets.append({"target": name, "status": status, "value": value, "measured": measured})

    r = find_row(rows, "train step", "DDOD")
    ratio = r and r.get("ratio")
    add(f"DDOD/ATSS train step <= {TARGET_TRAIN}", ratio,
        ratio is not None and ratio <= TARGET_TRAIN, f"{ratio:.3f}" if ratio else "-")
    for precision in ("fp32", "fp16" if on_cuda else "bf16"):
        for kind in ("latency", "throughput"):
            r = find_row(rows, "inference", "DDOD", precision, kind)
            ratio = r and r.get("ratio")
            setting = r["setting"] if r else f"{precision}, {kind}"
            add(f"DDOD/ATSS inference <= {TARGET_INFER} ({setting})", ratio,
                ratio is not None and ratio <= TARGET_INFER,
                f"{ratio:.3f}" if ratio else (r or {}).get("note", "-") or "-")
    mixed = "fp16" if on_cuda else "bf16"
    d, f = (find_row(rows, "inference", m, mixed, "throughput") for m in ("DDOD", "FCOS"))
    tp = (d or {}).get("throughput"), (f or {}).get("throughput")
    ratio = tp[0] / tp[1] if tp[0] and tp[1] else None
    add(f"DDOD {mixed} inference throughput >= Detectron2 FCOS's", ratio,
        ratio is not None and ratio >= 1.0,
        f"{tp[0]:.2f} vs {tp[1]:.2f} img/s ({ratio:.3f})" if ratio else "-")
    r = find_row(rows, "train step", "DDOD")
    peak = r and r.get("peak")
    gib = peak / 2**30 if peak else None
    add(f"DDOD train memory, 2 images <= {TARGET_MEMORY_GIB} GiB", gib,
        gib is not None and gib <= TARGET_MEMORY_GIB,
        f"{gib:.2f} GiB ({r['setting']})" if gib else "-")
    return targets


def machine(device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "host": platform.node(), "cpus": os.cpu_count()}  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def render(report: dict) -> str:
    dry = report["dry_run"]
    where = "DRY RUN on the CPU, tiny sizes" if dry else report["machine"].get("gpu")
    out = [f"## GPU check ({where})",
           "", f"- date: {report['date']}; command: `{report['command']}`",
           f"- torch {report['machine']['torch']}; wall time {report['elapsed_s']:.0f} s "
           f"(budget {report['budget_s']:.0f} s)", "",
           "| check | result | detail |", "| --- | --- | --- |"]  # fmt: skip
    for h in report.get("heads", []):
        if "error" in h:
            out.append(f"| head {h['method']} | FAIL | {h['error'][:150]} |")
            continue
        res = "OK" if h["fp32_ok"] else "FAIL"
        detail = (f"{h['comparison']}: {h['tensors']} tensors, max error {h['max_error']:.1e} "
                  f"(tol {h['tol']:g})")  # fmt: skip
        if len(h["draws"]) > 1:
            first = h["draws"][0]
            detail += (f" on draw {h['seed'] + 1}; draw 1: {first['max_error']:.1e} "
                       f"({first['over_tolerance'][0]})")  # fmt: skip
        if h["over_tolerance"]:
            detail += f"; over: {', '.join(h['over_tolerance'][:3])}"
        out.append(f"| head {h['method']} ({h['head']}) fp32 | {res} | {detail} |")
        if "mixed_error" in h:
            out.append(f"| head {h['method']} {h['mixed']} | FAIL | {h['mixed_error'][:150]} |")
        else:
            res = "OK" if h["mixed_ok"] else "FAIL"
            bad = ", ".join(h["mixed_nonfinite"][:3])
            bad = f"; non-finite: {bad}" if bad else ""
            worst = h["mixed_worst"][0][0] if h["mixed_worst"] else "-"
            out.append(f"| head {h['method']} {h['mixed']} | {res} | finite outputs and gradients, "
                       f"outputs {'/'.join(h['mixed_output_dtypes'])}, error to the reference: "
                       f"outputs {h['mixed_output_error']:.1e}, all {h['mixed_max_error']:.1e} "
                       f"({worst}){bad} |")  # fmt: skip
    s = report.get("sync")
    if s:
        if "error" in s:
            out.append(f"| sync (DDOD step) | FAIL | {s['error'][:150]} |")
        elif s["syncs"] is None:
            out.append(f"| sync (DDOD step) | skipped | {s['status']} |")
        else:
            c = s["counts"]
            out.append(f"| sync (DDOD step) | {sum(c.values())} syncs | assignment "
                       f"{c['assignment']}, losses {c['losses']}, other {c['other']} "
                       f"({s['setting']}); sites below |")  # fmt: skip
    b = report.get("benchmark")
    if b:
        out.append(f"| benchmarks.run | {'OK' if b['ok'] else 'FAIL'} | rc {b['returncode']}, "
                   f"{b['wall_s']:.0f} s, {len(b['rows'])} rows |")  # fmt: skip
    t = report.get("train_net")
    if t:
        ap = f"{t['bbox_ap']:.1f}" if t["bbox_ap"] is not None else "-"
        loss = f"{t['last_loss']:.3f}" if t["last_loss"] is not None else "-"
        out.append(f"| train_net.py AMP, digits | {'OK' if t['ok'] else 'FAIL'} | rc "
                   f"{t['returncode']}, {t['iterations']} iters in {t['wall_s']:.0f} s, losses "
                   f"finite: {t['losses_finite']} (last {loss}), checkpoint: {t['checkpoint']}, "
                   f"evaluated: {t['evaluated']} (bbox AP {ap}) |")  # fmt: skip
    for name, err in report.get("errors", {}).items():
        out.append(f"| {name} | CRASH | {err[:150]} |")
    if s and s.get("syncs"):
        out += ["", "Synchronisations of one DDOD training step (phase, count, call site):", ""]
        out += [f"- {e['phase']} x{e['count']}: `{e['site']}`" for e in s["syncs"]]
    if report.get("targets"):
        out += ["", "| target | status | measured |", "| --- | --- | --- |"]
        out += [f"| {t['target']} | {t['status']} | {t['measured']} |" for t in report["targets"]]
    if b and b.get("table"):
        out += ["", b["table"]]
    out += ["", f"RESULT: {'PASS' if report['ok'] else 'FAIL'} (correctness checks; targets "
            f"and synchronisations are figures)"]  # fmt: skip
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="rehearse every section on the CPU at tiny sizes")  # fmt: skip
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--out", default=os.path.join("output", "gpu_check", "gpu_check.json"),
                   help="the JSON report; logs and the digits run go beside it")  # fmt: skip
    p.add_argument("--budget", type=float,
                   help="seconds for the whole check (default 600); the benchmark gets "
                   f"{BENCH_SHARE:.0%} of what is left when it starts, train_net the rest")
    p.add_argument("--channels", type=int, help="head width (default: as configured; dry run 64)")
    p.add_argument("--p3", type=parse_size, help="P3 size of the head check (HEIGHTxWIDTH)")
    p.add_argument("--batch", type=int)
    p.add_argument("--tol", type=float, default=1e-3,
                   help="fp32 tolerance: max abs error / max abs reference, per tensor")
    p.add_argument("--threads", type=int,
                   help="torch threads of this process (default: 1 in the dry run, where other "
                   "jobs' load made two spinning threads 15x slower on tiny heads; else torch's)")
    p.add_argument("--draws", type=int, default=2,
                   help="draws of weights and inputs a head may take to be within --tol")
    p.add_argument("--sync-size", type=parse_size)
    p.add_argument("--bench-models", nargs="+",
                   help="models of the benchmark (default: its own five and every other model "
                   "file, as <file>.py); ATSS is always added")  # fmt: skip
    p.add_argument("--bench-runs", type=int)
    p.add_argument("--bench-warmup", type=int)
    p.add_argument("--digits-iters", type=int, help="iterations of the digits AMP run")
    p.add_argument("--digits-eval-images", type=int,
                   help="evaluate on the first N digits val images (0: the whole split of 100)")
    args = p.parse_args(argv)
    preset = PRESETS["dry" if args.dry_run else "cuda"]
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in ("p3", "sync_size"):
        if isinstance(getattr(args, key), str):
            setattr(args, key, parse_size(getattr(args, key)))
    if args.digits_iters is not None and args.digits_iters < 1:
        p.error("--digits-iters must be >= 1")
    return args


def main(argv=None) -> int:
    args = get_args(argv)
    if args.threads or args.dry_run:
        torch.set_num_threads(args.threads or 1)
    if args.dry_run:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("CUDA is not available on this machine: run `python -m benchmarks.gpu_check "
              "--dry-run` to rehearse the check on the CPU.", file=sys.stderr)  # fmt: skip
        return 2
    else:
        device = torch.device("cuda")
        # the fp32 comparison is of fp32 kernels, not TF32 ones
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    out_path = os.path.abspath(args.out)
    out_dir = os.path.dirname(out_path)
    os.makedirs(out_dir, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    report = {
        "dry_run": args.dry_run,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m benchmarks.gpu_check"] + list(argv or sys.argv[1:])),
        "device": device.type,
        "machine": machine(device),
        "budget_s": args.budget,
        "args": {k: v for k, v in vars(args).items()},
        "errors": {},
    }
    for section in args.sections:
        try:
            if section == "heads":
                report["heads"] = check_heads(args, device, args.dry_run)
            elif section == "sync":
                log("[sync] one DDOD training step")
                report["sync"] = check_sync(args, device, args.dry_run)
            elif section == "benchmark":
                left = deadline - time.perf_counter()
                later = "train_net" in args.sections[args.sections.index(section):]
                report["benchmark"] = run_benchmark(
                    args, device, out_dir, left * (BENCH_SHARE if later else 1.0)
                )
            elif section == "train_net":
                left = deadline - time.perf_counter()
                report["train_net"] = run_train_net(args, device, out_dir, max(left, 60.0))
        except Exception as e:  # noqa: BLE001
            log(f"[{section}] crashed: {e}")
            report["errors"][section] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["targets"] = compute_targets(
        (report.get("benchmark") or {}).get("rows", []), on_cuda=device.type == "cuda"
    ) if "benchmark" in args.sections else []  # fmt: skip
    heads_ok = all(h.get("fp32_ok") and h.get("mixed_ok") for h in report.get("heads", []))
    report["ok"] = (
        not report["errors"]
        and heads_ok
        and (report.get("benchmark") or {"ok": True})["ok"]
        and (report.get("train_net") or {"ok": True})["ok"]
        and (report.get("sync") or {}).get("losses_finite", True)
    )
    report["elapsed_s"] = time.perf_counter() - _T0
    text = render(report)
    report["report"] = text
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(text, flush=True)
    log(f"wrote {out_path}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
