"""Smoke tests of the benchmark tooling (benchmarks/): the command runs end to end at a tiny size
and prints its table and target summary. No timing is asserted: speed targets are figures the
benchmark prints, not properties a unit test can check on a shared machine."""
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("DDOD", "ATSS", "FCOS", "RetinaNet")
SECTIONS = ("train step", "inference", "assignment share", "many objects", "assigner (1 image)")


def test_benchmark_command_prints_table_and_targets(tmp_path):
    # One thread: on a shared 2-core machine two spinning OpenMP threads can make a tiny model
    # 50x slower; this is a smoke test, not a measurement.
    report = tmp_path / "bench.json"
    cmd = [
        sys.executable, "-m", "benchmarks.run", "--device", "cpu", "--preset", "tiny",
        "--warmup", "0", "--runs", "1", "--threads", "1", "--max-objects", "200",
        "--assigner-sizes", "128x192", "--assigner-objects", "1", "100", "--json", str(report),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout

    assert "| section" in out and "time / baseline" in out
    for section in SECTIONS:
        assert f"| {section}" in out, section
    for model in MODELS:
        assert f"| {model} " in out, model
    assert "Targets (issue 5)" in out
    status_lines = [l for l in out.splitlines() if l[:4] in ("PASS", "FAIL", "N/A ")]
    # training, 4 inference settings, assignment share, 1000 objects, 2 GPU throughput lines
    assert len(status_lines) == 9, status_lines
    assert sum(l.startswith("N/A") for l in status_lines) == 2  # the GPU-only targets, on a CPU

    data = json.loads(report.read_text())
    rows = data["rows"]
    assert {r["section"] for r in rows} == set(SECTIONS)
    for r in rows:
        assert r["median"] is not None and r["median"] > 0, r  # no model or cell failed
        if r["section"] in ("train step", "many objects"):
            assert r["peak"] and r["peak"] > 0, r
    ratios = {(r["section"], r["model"]): r["ratio"] for r in rows if r["section"] == "train step"}
    assert ratios[("train step", "ATSS")] == pytest.approx(1.0)


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
