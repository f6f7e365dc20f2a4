"""benchmarks/gpu_check.py: the GPU check's rehearsal (--dry-run) runs every section on the CPU,
and its parts (method discovery, the synchronisation collector, the head comparison, the
issue's targets) do what the GPU run relies on. No timing is asserted."""
import json
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch

from benchmarks import gpu_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_methods_are_the_model_files_that_define_model(tmp_path):
    (tmp_path / "mine.py").write_text("model = dict(head=dict(num_convs=2))\n")
    (tmp_path / "helpers.py").write_text("def use_backbone(model):\n    return model\n")
    (tmp_path / "_private.py").write_text("model = dict()\n")
    assert list(gpu_check.method_configs(str(tmp_path))) == ["mine"]
    # the project's own: every method file, no helper file
    found = gpu_check.method_configs()
    assert {"ddod", "atss", "fcos", "retinanet", "vfnet"} <= set(found)
    assert not {"backbones", "disentangle"} & set(found)


@pytest.fixture
def one_thread():
    # tiny heads: two spinning OpenMP threads on a shared 2-core machine measured 15x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_head_comparison_passes_equal_heads_and_catches_a_changed_one(one_thread):
    model_cfg = gpu_check.method_configs()["ddod"]
    head = gpu_check.build_head(model_cfg, channels=32)
    # the zero-initialised offset convs got random weights: fractional sampling points
    offsets = [m for n, m in head.named_modules() if n.endswith("conv_offset")]
    assert offsets and all(m.weight.abs().sum() > 0 for m in offsets)
    feats = gpu_check.head_inputs(model_cfg.head, 32, 2, (8, 12))
    cpu = torch.device("cpu")
    ref = gpu_check.run_head(head, feats, cpu, torch.float64)
    same = gpu_check.run_head(head, feats, cpu, torch.float32)
    # 5 levels x (cls, box, quality), the input gradients and every parameter's gradient
    assert sum(k.startswith("out/") for k in ref) == 15
    assert sum(k.startswith("grad/input/") for k in ref) == 5
    assert max(gpu_check.rel_error(same[k], ref[k]) for k in ref) < 1e-4
    with torch.no_grad():
        head.cls_score.weight.mul_(1.01)  # a "kernel" 1% off on the classification output
    off = gpu_check.run_head(head, feats, cpu, torch.float32)
    assert gpu_check.rel_error(off["out/0/0"], ref["out/0/0"]) > 1e-3
    # hand-computed: max |t - r| / max |r|
    assert gpu_check.rel_error(torch.tensor([1.0, -4.0]), torch.tensor([1.0, -3.0])) == 1 / 3
    assert gpu_check.rel_error(torch.zeros(2), torch.zeros(3)) == math.inf


def test_sync_collector_records_phase_and_call_site():
    collector = gpu_check.SyncCollector()

    class Model:
        def label_anchors(self):
            warnings.warn("called a synchronizing CUDA operation")  # the "op" of this line

        def other(self):
            warnings.warn("an unrelated warning")

    model = Model()
    undo = collector.wrap(model, "label_anchors", "assignment")
    with collector.capturing():
        model.label_anchors()
        model.label_anchors()
        warnings.warn("called a synchronizing CUDA operation")  # outside any phase
        with pytest.warns(UserWarning, match="unrelated"):
            model.other()  # passed on to the previous handler, not recorded
    undo()
    assert "label_anchors" not in vars(model)  # the class method is back
    summary = collector.summary()
    assert [(s["phase"], s["count"]) for s in summary] == [("assignment", 2), ("other", 1)]
    assert summary[0]["site"].startswith("tests/test_gpu_check.py:")
    assert "in label_anchors" in summary[0]["site"] and "synchronizing" in summary[0]["site"]


def rows_for(train_ratio, peak, infer_ratio, ddod_tp, fcos_tp, mixed="fp16 autocast"):
    rows = [{"section": "train step", "model": "DDOD", "setting": "fp32, batch 2, 800x1333",
             "ratio": train_ratio, "peak": peak}]  # fmt: skip
    for precision in ("fp32", mixed):
        for kind, bs in (("latency", 1), ("throughput", 8)):
            setting = f"{precision}, batch {bs} ({kind}), 800x1333"
            rows.append({"section": "inference", "model": "DDOD", "setting": setting,
                         "ratio": infer_ratio, "throughput": ddod_tp})  # fmt: skip
            rows.append({"section": "inference", "model": "FCOS", "setting": setting,
                         "ratio": 0.9, "throughput": fcos_tp})  # fmt: skip
    return rows


def test_targets_pass_fail_on_cuda_and_not_judged_in_a_dry_run():
    rows = rows_for(1.05, int(3.0 * 2**30), 1.06, 10.0, 12.0)
    status = {t["target"].split(" (")[0]: t["status"]
              for t in gpu_check.compute_targets(rows, on_cuda=True)}  # fmt: skip
    assert status["DDOD/ATSS train step <= 1.08"] == "PASS"
    assert status["DDOD/ATSS inference <= 1.05"] == "FAIL"  # 1.06
    assert status["DDOD fp16 inference throughput >= Detectron2 FCOS's"] == "FAIL"  # 10 < 12
    assert status["DDOD train memory, 2 images <= 3.4 GiB"] == "PASS"  # 3.0 GiB
    targets = gpu_check.compute_targets(rows_for(1.1, int(3.5 * 2**30), 1.0, 13.0, 12.0), True)
    assert [t["status"] for t in targets] == ["FAIL"] + ["PASS"] * 5 + ["FAIL"]
    assert math.isclose(targets[-1]["value"], 3.5)
    dry = gpu_check.compute_targets(rows_for(1.1, 2**20, 1.0, 1.0, 2.0, "bf16 autocast"), False)
    assert len(dry) == 7 and {t["status"] for t in dry} == {"n/a (dry run)"}
    assert {t["status"] for t in gpu_check.compute_targets([], True)} == {"not measured"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a GPU-less host")
def test_without_a_gpu_the_real_run_says_to_rehearse(capsys):
    assert gpu_check.main(["--out", os.devnull]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_dry_run_rehearses_every_section(tmp_path):
    out = tmp_path / "check" / "gpu_check.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--out", str(out),
           "--p3", "8x12", "--bench-models", "DDOD", "FCOS"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["ok"] and not report["errors"]

    # every method's head, compared and run under autocast
    methods = {h["method"] for h in report["heads"]}
    assert methods == set(gpu_check.method_configs())
    for h in report["heads"]:
        assert h["fp32_ok"] and h["mixed_ok"], h
        assert h["comparison"] == "CPU fp32 vs CPU float64 (dry run)"
        assert h["mixed"] == "bf16 autocast" and "bfloat16" in h["mixed_output_dtypes"]
    vfnet = next(h for h in report["heads"] if h["method"] == "vfnet")
    assert vfnet["head"] == "VFNetHead"  # its star offsets run through the same check

    sync = report["sync"]
    assert sync["syncs"] is None and sync["status"].startswith("skipped on CPU")
    assert sync["phases_run"] == ["assignment", "losses"] and sync["losses_finite"]

    bench = report["benchmark"]
    assert bench["ok"] and "--device cpu --preset tiny" in bench["command"]
    trained = {r["model"] for r in bench["rows"] if r["section"] == "train step" and r["median"]}
    assert trained == {"DDOD", "ATSS", "FCOS"}
    targets = report["targets"]
    assert len(targets) == 7 and all(t["status"] == "n/a (dry run)" for t in targets), targets
    assert targets[0]["value"] > 0 and targets[-1]["value"] > 0  # train ratio, memory

    digits = report["train_net"]
    assert digits["ok"] and digits["returncode"] == 0
    assert "--num-gpus 1" in digits["command"] and "train.amp.enabled=True" in digits["command"]
    assert digits["losses_logged"] == 4 and digits["losses_finite"]
    assert digits["checkpoint"] and digits["evaluated"]

    printed = proc.stdout
    assert "## GPU check (DRY RUN" in printed and "| head vfnet (VFNetHead) fp32 | OK" in printed
    assert "| DDOD/ATSS train step <= 1.08 | n/a (dry run) |" in printed
    assert printed.rstrip().splitlines()[-1].startswith("RESULT: PASS")
