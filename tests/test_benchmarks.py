"""Smoke tests of the benchmark tooling (benchmarks/): the command runs end to end at a tiny size
and prints its table and target summary. No timing is asserted: speed targets are figures the
benchmark prints, not properties a unit test can check on a shared machine."""
import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.common import mixed_precision_skip_reason
from ddod.utils import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("DDOD", "ATSS", "FCOS", "RetinaNet")
SECTIONS = ("train step", "inference", "assignment share", "many objects", "assigner (1 image)")


def run_benchmark(args, env=None, timeout=900):
    """``python -m benchmarks.run ARGS`` in a fresh interpreter: (stdout, the --json report)."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--device", "cpu", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def is_bf16_row(row):
    return row["section"] == "inference" and row["setting"].startswith("bf16")


def test_benchmark_command_prints_table_and_targets(tmp_path):
    # One thread: on a shared 2-core machine two spinning OpenMP threads can make a tiny model
    # 50x slower; this is a smoke test, not a measurement.
    report = tmp_path / "bench.json"
    out = run_benchmark([
        "--preset", "tiny", "--warmup", "0", "--runs", "1", "--threads", "1",
        "--max-objects", "200", "--assigner-sizes", "128x192", "--assigner-objects", "1", "100",
        "--json", str(report),
    ])  # fmt: skip
    # This host's answer, as the subprocess (same environment) sees it: bf16 rows run or skip.
    bf16_skipped = mixed_precision_skip_reason(torch.device("cpu")) is not None

    assert "| section" in out and "time / baseline" in out
    for section in SECTIONS:
        assert f"| {section}" in out, section
    for model in MODELS:
        assert f"| {model} " in out, model
    assert "Targets (issue 5)" in out
    status_lines = [l for l in out.splitlines() if l[:4] in ("PASS", "FAIL", "N/A ")]
    # training, 4 inference settings, assignment share, 1000 objects, 2 GPU throughput lines
    assert len(status_lines) == 9, status_lines
    # the GPU-only targets on a CPU, and the two bf16 inference targets where bf16 is skipped
    assert sum(l.startswith("N/A") for l in status_lines) == 2 + 2 * bf16_skipped

    data = json.loads(report.read_text())
    rows = data["rows"]
    assert {r["section"] for r in rows} == set(SECTIONS)
    for r in rows:
        if bf16_skipped and is_bf16_row(r):
            assert r["median"] is None and r["note"].startswith("skipped"), r
            continue
        assert r["median"] is not None and r["median"] > 0, r  # no model or cell failed
        if r["section"] in ("train step", "many objects"):
            assert r["peak"] and r["peak"] > 0, r
    ratios = {(r["section"], r["model"]): r["ratio"] for r in rows if r["section"] == "train step"}
    assert ratios[("train step", "ATSS")] == pytest.approx(1.0)


def test_cpu_without_native_bf16_skips_bf16_rows_and_header_says_why(tmp_path):
    """The AVX2-only host, simulated: bf16 rows skipped and labelled; ISA, threads and time
    budget in the header."""
    # oneDNN capped to AVX2, so bf16 is emulated (~500x slower than fp32 for a conv)
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2",
               OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")  # fmt: skip
    env.pop(cpu.OVERRIDE_ENV, None)
    report = tmp_path / "bench.json"
    out = run_benchmark(
        ["--preset", "tiny", "--warmup", "0", "--runs", "2", "--sections", "infer",
         "--models", "DDOD", "--time-budget", "0.01", "--json", str(report)],
        env=env,
    )  # fmt: skip
    header = out.split("| section")[0]
    assert "CPU ISA: avx2" in header  # every x86-64 host this project runs on has AVX2
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in header and "ATen kernels AVX2" in header
    assert "bf16 NOT native" in header
    assert "torch threads=1, OMP_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE" in header

    rows = json.loads(report.read_text())["rows"]
    bf16 = [r for r in rows if is_bf16_row(r)]
    assert {r["model"] for r in bf16} == {"DDOD", "ATSS"} and len(bf16) == 4  # 2 batch sizes
    for r in bf16:
        assert r["median"] is None and r["note"].startswith("skipped: no native bf16"), r
    fp32 = [r for r in rows if r["section"] == "inference" and r not in bf16]
    assert len(fp32) == 4 and all(r["median"] > 0 for r in fp32)
    # The (tiny) time budget cut every figure to its minimum, and the table says so.
    assert all(r["note"] == "1 of 2 runs (time budget)" for r in fp32), fp32
    assert "(time budget 0 s; 4 figures got fewer runs than asked" in header
    targets = [l for l in out.splitlines() if "inference time" in l and "bf16" in l]
    assert len(targets) == 2 and all(l.startswith("N/A") and "skipped" in l for l in targets)


class FakeClock:
    """``time`` for benchmarks.common: perf_counter advances only when a benchmarked call runs."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def call(self, seconds):
        def fn():
            self.now += seconds

        return fn


@pytest.fixture
def clock(monkeypatch):
    import types

    from benchmarks import common

    fake = FakeClock()
    monkeypatch.setattr(common, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def test_deadline_cuts_runs_but_keeps_the_minimum(clock):
    from benchmarks.common import interleaved_times

    cpu_device = torch.device("cpu")
    fns = {"a": clock.call(1.0), "b": clock.call(1.0)}  # a round of both: 2 s
    # warm-up round ends at 2 s, timed rounds at 4 and 6 s; one more would end at 8 > 7.5
    times, errors = interleaved_times(fns, cpu_device, warmup=1, runs=10, deadline=7.5)
    assert errors == {} and times == {"a": [1.0, 1.0], "b": [1.0, 1.0]}
    # the caller's own later work (reserve_rounds) counts: 4 + 2 * 1.5 > 6.5 after one round
    clock.now = 0.0
    times, _ = interleaved_times(fns, cpu_device, warmup=1, runs=10, deadline=6.5,
                                 reserve_rounds=0.5)  # fmt: skip
    assert len(times["a"]) == 1
    clock.now = 0.0
    times, _ = interleaved_times(fns, cpu_device, warmup=1, runs=10, deadline=0.0, min_runs=3)
    assert len(times["a"]) == 3  # past the deadline already: still the minimum
    times, _ = interleaved_times(fns, cpu_device, warmup=0, runs=4)  # no deadline: every run
    assert len(times["b"]) == 4


def test_time_budget_shares_the_time_left_by_weight(clock):
    from benchmarks.common import TimeBudget, share_of_time

    budget = TimeBudget(100.0)
    assert budget.deadline(1, 4) == pytest.approx(25.0)  # a quarter of the weight to come
    clock.now = 40.0  # the first piece overran: the rest share what is left
    assert budget.deadline(2, 3) == pytest.approx(40.0 + 60.0 * 2 / 3)
    clock.now = 120.0  # past the end: every later deadline is now (pieces make their minimum)
    assert budget.deadline(1, 1) == pytest.approx(120.0)
    assert TimeBudget(None).deadline(1, 1) is None and TimeBudget(0).deadline(1, 1) is None
    assert share_of_time(None, 1, 2) is None


def test_memory_tracker_counts_live_tensors():
    from benchmarks.common import TensorMemoryTracker

    x = torch.zeros(1000)  # existing tensor: not counted, also when written in place
    with TensorMemoryTracker(known_tensors=[x]) as tracker:
        x.add_(1)
        a = torch.ones(250_000)  # 1 MB
        b = a * 2  # 1 MB more, peak 2 MB
        del a
        c = b[:10]  # a view: no new storage
        del b, c
        d = torch.empty(100_000)  # 0.4 MB after the others are gone
    assert tracker.peak == 2_000_000
    assert tracker.live == d.untyped_storage().nbytes()


def test_cuda_deform_check_runs():
    from benchmarks import check_cuda_deform

    if not torch.cuda.is_available():
        assert check_cuda_deform.main([]) == 0  # exits cleanly, with a message
    # the comparison machinery itself, on the CPU: our CPU op vs torchvision's CPU kernel
    args = ["--target", "cpu-torchvision", "--channels", "32", "--size", "16x24"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert check_cuda_deform.main(args) == 0
    finally:
        torch.set_num_threads(threads)


def test_profile_script_runs(capsys):
    from benchmarks import profile_step

    argv = [
        "--threads", "1", "--backbone", "tiny", "--size", "128x192", "--num-gt", "4",
        "--warmup", "1", "--steps", "1", "--top", "5", "--no-python",
        "--assigner-size", "128x192", "--assigner-objects", "10",
    ]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert profile_step.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "Phases" in out and "assign" in out and "synchronisation points" in out
    assert "ATSS ms" in out  # the baseline's phases side by side
