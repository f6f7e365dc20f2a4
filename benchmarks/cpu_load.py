"""The quickstart's CPU training step on a quiet and on a loaded machine, per OpenMP wait setting.

    python -m benchmarks.cpu_load                    # 12 steps each, load = 2 busy processes
    python -m benchmarks.cpu_load --steps 20 --load-procs 4 --settings project passive

Why: OpenMP worker threads that spin while waiting for work hold on to their core; when other
processes compete for the cores, a spinning thread that lost its core stalls every parallel
region, and a CPU training step can become several times slower. Threads that never spin
(``OMP_WAIT_POLICY=PASSIVE``) pay a wake-up at every parallel region instead, which costs time on
a quiet machine. The project's scripts (``train_net.py``, and ``demo.py`` and the tools through
it) therefore set a short spin, ``GOMP_SPINCOUNT=10000``, unless the user set a wait policy.

Settings compared (``--settings``): ``project`` (GOMP_SPINCOUNT=10000), ``default`` (libgomp's
own: neither variable set), ``passive`` (OMP_WAIT_POLICY=PASSIVE), ``active``
(OMP_WAIT_POLICY=ACTIVE). Each (setting, load) cell runs in a fresh process (libgomp reads them
when torch loads): the quickstart model (``configs/quickstart/ddod_digits_cpu.py``) trains
``--steps`` SGD steps on real digits batches, and the median of the steps after two warm-up
steps is printed. The load is ``--load-procs`` processes that each spin on pure Python arithmetic
for the whole measurement.
"""
import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")
# name -> the OpenMP variables of the cell (the others are removed from its environment)
SETTINGS = {
    "project": {"GOMP_SPINCOUNT": "10000"},
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}
_OPENMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import train_net  # noqa: F401  (imports ddod first)
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.utils.events import EventStorage
cfg = LazyConfig.load({config!r})
torch.manual_seed(0)
model = instantiate(cfg.model).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
batches = iter(instantiate(cfg.dataloader.train))
times = []
with EventStorage(0):
    for _ in range({steps}):
        batch = next(batches)
        start = time.perf_counter()
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
import os
print(json.dumps({{"median": statistics.median(times[2:]), "threads": torch.get_num_threads(),
                  "openmp_env": {{k: os.environ[k] for k in {openmp_vars!r} if k in os.environ}}}}))
"""


def _spin(stop_at: float):
    x = 0
    while time.time() < stop_at:
        x = (x * 31 + 7) % 1000003


def measure(setting: str, load_procs: int, steps: int, timeout: float = 1800):
    """Median seconds per step of the quickstart model under the OpenMP ``setting`` (a key of
    SETTINGS) with ``load_procs`` spinning processes; also the load average seen."""
    env = {k: v for k, v in os.environ.items() if k not in _OPENMP_VARS}
    env.update(SETTINGS[setting], CUDA_VISIBLE_DEVICES="")
    loaders = []
    if load_procs:
        stop_at = time.time() + timeout
        loaders = [multiprocessing.Process(target=_spin, args=(stop_at,), daemon=True)
                   for _ in range(load_procs)]  # fmt: skip
        for p in loaders:
            p.start()
    try:
        code = _CHILD.format(root=ROOT, config=CONFIG, steps=steps, openmp_vars=_OPENMP_VARS)
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
        )
        load = os.getloadavg()[0]
    finally:
        for p in loaders:
            p.terminate()
            p.join()
    if result.returncode != 0:
        raise RuntimeError(
            f"measurement failed ({setting}, load {load_procs}):\n{result.stderr[-3000:]}"
        )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out.update(setting=setting, load_procs=load_procs, loadavg=load)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=12, help="steps per cell (2 are warm-up)")
    parser.add_argument("--load-procs", type=int, default=2, help="busy processes for 'loaded'")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS),
                        default=["project", "default", "passive", "active"])  # fmt: skip
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be at least 3 (two warm-up steps)")

    print(f"# quickstart training step, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows = []
    for setting in args.settings:
        described = " ".join(f"{k}={v}" for k, v in SETTINGS[setting].items()) or "neither set"
        for load in (0, args.load_procs):
            row = measure(setting, load, args.steps)
            rows.append(row)
            where = f"loaded ({load} busy procs)" if load else "quiet"
            print(f"{setting:8s} ({described:26s}) {where:22s} {row['median']:.3f} s/step  "
                  f"(torch threads {row['threads']}, load average {row['loadavg']:.2f})",
                  flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
