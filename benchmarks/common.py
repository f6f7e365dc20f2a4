"""Timing and memory measurement shared by the benchmark scripts.

Time: wall clock (``time.perf_counter``) around one call, with ``torch.cuda.synchronize()`` before
and after on CUDA, so a figure is the time until the results exist. Figures are medians of several
runs taken after warm-up runs. When several models are compared, their runs are interleaved
(A B C, B C A, ...), so a slow spell of a shared machine hits all of them alike and the ratios
stay meaningful even when the absolute times are noisy.

Memory ("peak"), the same definition on both devices:

    bytes of the persistent state that exists before the measured call (parameters, buffers and
    optimizer state; gradients are set to None first)
  + the highest total of the tensors allocated during the call that were alive at the same time.

* CUDA: the second term is ``torch.cuda.max_memory_allocated()`` minus
  ``torch.cuda.memory_allocated()`` at the start, after ``reset_peak_memory_stats()``.
* CPU: PyTorch keeps no allocation statistics for the CPU, and the process RSS mixes in the
  allocator's caches, so :class:`TensorMemoryTracker` follows every tensor storage created during
  the call (a ``TorchDispatchMode`` that sees each op's outputs, backward ops included) and frees
  it from the count when the storage is released. It counts tensor storage only: not the scratch
  buffers that kernels allocate internally (e.g. im2col, oneDNN workspaces) and not allocator
  overhead, so it is comparable to CUDA's ``max_memory_allocated`` rather than to RSS. Tracking
  slows the call down, so it runs in a separate, untimed pass.
"""
import datetime
import gc
import os
import platform
import statistics
import sys
import time
import weakref
from contextlib import nullcontext
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ddod.utils import cpu as cpu_info

MiB = float(1 << 20)


# ----------------------------------------------------------------------------------------------
# devices
# ----------------------------------------------------------------------------------------------
def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mixed_precision_dtype(device: torch.device) -> torch.dtype:
    """fp16 autocast on CUDA, bf16 autocast on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def precision_context(device: torch.device, precision: str):
    """``"fp32"`` (no autocast) or ``"mixed"`` (autocast in :func:`mixed_precision_dtype`)."""
    if precision == "fp32":
        return nullcontext()
    if precision == "mixed":
        return torch.autocast(device.type, dtype=mixed_precision_dtype(device))
    raise ValueError(f"Unknown precision {precision!r}.")


def precision_label(device: torch.device, precision: str) -> str:
    if precision == "fp32":
        return "fp32"
    return "fp16 autocast" if device.type == "cuda" else "bf16 autocast"


def mixed_precision_skip_reason(device: torch.device) -> Optional[str]:
    """Why the mixed-precision rows are skipped on this device, or None to run them.

    On a CPU without native bf16 the bf16 rows would take hours (emulated bf16 convs measured
    ~500x slower than fp32 with oneDNN capped to AVX2) and say nothing about a useful setting,
    so they are skipped, as ``train.amp.enabled`` falls back to fp32 (see ddod.utils.cpu).
    ``DDOD_CPU_BF16=1`` runs them anyway.
    """
    if device.type != "cpu":
        return None
    if cpu_info.cpu_autocast_dtype("bf16 rows", fallback="skipped") is not None:
        return None
    if cpu_info.bf16_support().native:  # native, but DDOD_CPU_BF16=0 said no
        return f"skipped: {cpu_info.OVERRIDE_ENV}=0"
    return "skipped: no native bf16 on this CPU (see the CPU line above the table)"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return "out of memory" in msg or "can't allocate memory" in msg or "not enough memory" in msg


def available_memory_bytes(device: torch.device) -> Optional[int]:
    """Free memory a run could still use: CUDA free memory, or the CPU's MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def total_memory_bytes(device: torch.device) -> Optional[int]:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def thread_settings() -> str:
    """torch's thread count and the OpenMP variables that decide how a shared CPU behaves."""
    env = ", ".join(
        f"{var}={os.environ.get(var, 'unset')}"
        for var in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    )
    return f"threads: torch threads={torch.get_num_threads()}, {env}"


def load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def machine_description(device: torch.device) -> List[str]:
    """Lines describing the machine and software, for the table header."""
    import torchvision

    try:
        import detectron2

        d2 = detectron2.__version__
    except Exception:  # pragma: no cover
        d2 = "?"
    lines = []
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(
            f"device: {props.name} ({props.total_memory / MiB / 1024:.0f} GiB), "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
            f"TF32 matmul={torch.backends.cuda.matmul.allow_tf32} "
            f"cudnn={torch.backends.cudnn.allow_tf32}, "
            f"cudnn.benchmark={torch.backends.cudnn.benchmark}"
        )
        lines.append(f"host: {cpu_info.cpu_model()}, {os.cpu_count()} logical CPUs")
    else:
        total = total_memory_bytes(device)
        mem = f", {total / MiB / 1024:.0f} GiB RAM" if total else ""
        lines.append(f"device: CPU, {cpu_info.cpu_model()}, {os.cpu_count()} logical CPUs{mem}")
        lines.append(f"CPU {cpu_info.cpu_description()}")
        lines.append(thread_settings())
    lines.append(
        f"software: Python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, detectron2 {d2}"
    )
    lines.append(f"date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    lines.append("command: " + " ".join(["python"] + sys.argv))
    return lines


# ----------------------------------------------------------------------------------------------
# time
# ----------------------------------------------------------------------------------------------
def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call of ``fn``, until its device work has finished."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def describe_error(exc: BaseException) -> str:
    if is_out_of_memory(exc):
        return "out of memory"
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]


def interleaved_times(
    fns: Dict[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int,
    runs: int,
    deadline: Optional[float] = None,
    min_runs: int = 1,
    reserve_rounds: float = 0.0,
) -> Tuple[Dict[str, List[float]], Dict[str, str]]:
    """Run every ``fn`` ``warmup`` times untimed, then ``runs`` timed times, interleaved.

    Run r calls the functions in an order rotated by r, so no function is always first after a
    garbage collection or always next to the same neighbour. A function that raises is dropped
    from the later runs and reported, so one failing model does not stop the others.

    With a ``deadline`` (a ``time.perf_counter()`` value, see :class:`TimeBudget`), the timed
    runs stop early, after ``min_runs`` at least, when one more round (one call of every ``fn``,
    as long as the last round) would end after it; ``reserve_rounds`` rounds of the caller's
    own later work (e.g. a memory pass) are counted in.

    Returns:
        ({name: [seconds of each timed run]}, {name: error message}).
    """
    errors: Dict[str, str] = {}

    def guarded(name, timed):
        try:
            return time_call(fns[name], device) if timed else fns[name]()
        except Exception as e:  # noqa: BLE001  (a failing model becomes a table row)
            errors[name] = describe_error(e)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return None

    names = list(fns)
    t0 = time.perf_counter()
    for name in names:
        for _ in range(warmup):
            if name not in errors:
                guarded(name, False)
    synchronize(device)
    round_s = (time.perf_counter() - t0) / max(warmup, 1)  # until a timed round has run
    times = {name: [] for name in names}
    for r in range(runs):
        if deadline is not None and r >= min_runs:
            if time.perf_counter() + round_s * (1.0 + reserve_rounds) > deadline:
                break
        t0 = time.perf_counter()
        order = names[r % len(names):] + names[: r % len(names)] if names else []
        for name in order:
            if name in errors:
                continue
            gc.collect()
            t = guarded(name, True)
            if t is not None:
                times[name].append(t)
        round_s = time.perf_counter() - t0
    return {n: t for n, t in times.items() if n not in errors}, errors


class TimeBudget:
    """A wall-clock budget for a whole run, handed out as deadlines to its pieces of work.

    A piece (a section, then a group of interleaved runs within it) gets the share of the time
    left that its weight is of the weights still to come. Time a piece leaves unused goes to the
    later ones, and a piece that overruns (it always makes its minimum number of runs) takes
    from them, so the run ends near the budget whatever the speed of the machine. Weights are
    rough relative costs: only their ratios matter. Without a budget every deadline is None.
    """

    def __init__(self, seconds: Optional[float]):
        self.seconds = seconds or None
        self.end = None if self.seconds is None else time.perf_counter() + self.seconds

    def deadline(self, weight: float, weights_left: float) -> Optional[float]:
        """The deadline of a piece of ``weight`` when ``weights_left`` (this one included) are
        still to run before the end of the budget."""
        return share_of_time(self.end, weight, weights_left)


def share_of_time(end: Optional[float], weight: float, weights_left: float) -> Optional[float]:
    """The deadline of a piece of work of ``weight`` that shares the time until ``end`` (a
    ``time.perf_counter()`` value, or None for no limit) with the pieces after it, in proportion
    to their weights (``weights_left`` counts this piece too)."""
    if end is None:
        return None
    now = time.perf_counter()
    return now + max(0.0, end - now) * weight / max(weights_left, weight, 1e-9)


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


# ----------------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------------
class TensorMemoryTracker(TorchDispatchMode):
    """Live and peak bytes of the tensor storages created while the mode is active.

    Every op's output storage that is new (not one of the storages passed as ``known``, nor one
    already counted) is added to ``live``; a ``weakref.finalize`` on the storage subtracts it when
    the storage is released. In-place ops and views return already-counted storages and add
    nothing. Works on any device; on CUDA prefer the allocator's own statistics.
    """

    def __init__(self, known_tensors: Iterable[torch.Tensor] = ()):
        super().__init__()
        self._known = {}
        for t in known_tensors:
            st = t.untyped_storage()
            self._known[id(st)] = st  # keeps the object alive, so its id is not reused
        self._counted = set()
        self.live = 0
        self.peak = 0
        self.num_allocations = 0

    def _release(self, key: int, nbytes: int):
        self._counted.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key = id(st)
            if key in self._known or key in self._counted:
                continue
            nbytes = st.nbytes()
            self._counted.add(key)
            self.live += nbytes
            self.num_allocations += 1
            if self.live > self.peak:
                self.peak = self.live
            weakref.finalize(st, self._release, key, nbytes)
        return out


def state_tensors(*modules_or_optimizers) -> List[torch.Tensor]:
    """Parameters, buffers and gradients of modules, and the tensors of optimizer states."""
    tensors = []
    for obj in modules_or_optimizers:
        if obj is None:
            continue
        if isinstance(obj, torch.nn.Module):
            for p in obj.parameters():
                tensors.append(p)
                if p.grad is not None:
                    tensors.append(p.grad)
            tensors.extend(obj.buffers())
        elif isinstance(obj, torch.optim.Optimizer):
            for state in obj.state.values():
                tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        else:
            raise TypeError(type(obj))
    return tensors


def unique_storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    seen, total = set(), 0
    for t in tensors:
        st = t.untyped_storage()
        if st.data_ptr() in seen:
            continue
        seen.add(st.data_ptr())
        total += st.nbytes()
    return total


def peak_memory_bytes(
    fn: Callable[[], object],
    device: torch.device,
    *,
    state: Iterable[torch.Tensor] = (),
    known: Iterable[torch.Tensor] = (),
) -> int:
    """Peak memory of one call of ``fn`` (see the module docstring).

    Args:
        state: tensors counted as the persistent state (parameters, buffers, optimizer state).
        known: other tensors that exist before the call (inputs), neither counted nor re-counted
            when ops write into them.
    """
    state = list(state)
    base_state = unique_storage_bytes(state)
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return base_state + torch.cuda.max_memory_allocated(device) - start
    with TensorMemoryTracker(known_tensors=state + list(known)) as tracker:
        fn()
    return base_state + tracker.peak
