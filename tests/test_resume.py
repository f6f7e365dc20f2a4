"""Exact resume through ``train_net.py``: a run killed with SIGKILL after its half-way checkpoint
and resumed with ``--resume`` continues exactly like an uninterrupted run (same losses at every
later iteration, same level statistics, same weights), data order included.

The runs are subprocesses of ``train_net.py`` on the quickstart config with a tiny digits split
(8 images of 128x128, batch 2). The config file written by the test registers the split itself,
so every process that loads the config (including spawned ranks) knows it.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ddod  # noqa: F401
from ddod.data import ensure_digits_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_NET = os.path.join(ROOT, "train_net.py")
QUICKSTART = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")
SPLIT = dict(split="train", num_images=8, image_size=128, max_size=96)
LOSSES = ("total_loss", "loss_cls", "loss_bbox", "loss_iou")

CONFIG = """
# Written by tests/test_resume.py: the CPU quickstart on a tiny digits split, no evaluation.
from detectron2.config import LazyConfig
from ddod.data import register_digits_dataset

register_digits_dataset({name!r}, root={root!r}, **{split!r})
_base = LazyConfig.load({quickstart!r})
model = _base.model
optimizer = _base.optimizer
lr_multiplier = _base.lr_multiplier
dataloader = _base.dataloader
train = _base.train
dataloader.train.dataset.names = {name!r}
dataloader.train.total_batch_size = 2
dataloader.test = None
dataloader.evaluator = None
train.max_iter = {max_iter}
train.checkpointer.period = {period}
train.log_period = 1
train.metrics_window = 1  # raw per-iteration losses in metrics.json
train.seed = 7
"""


def write_config(directory, *, max_iter=6, period=3):
    """A config file for train_net.py; returns its path."""
    root = os.path.join(directory, "digits")
    ensure_digits_split(root=root, **SPLIT)  # generate once, here, not in every subprocess
    path = os.path.join(directory, "config.py")
    with open(path, "w") as f:
        f.write(
            CONFIG.format(
                name=f"resume_digits_{abs(hash(directory)) % 10**8}",
                root=root,
                split=SPLIT,
                quickstart=QUICKSTART,
                max_iter=max_iter,
                period=period,
            )
        )
    return path


def subprocess_env(threads=1):
    env = dict(os.environ)
    # One intra-op thread: the run is then deterministic whatever the machine, and two runs can
    # share the two cores of CI.
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONWARNINGS"] = "ignore"
    return env


def start_train_net(config, output_dir, *args, threads=1):
    log = open(output_dir + ".log", "w")
    os.makedirs(output_dir, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, TRAIN_NET, "--config-file", config, *args,
         f"train.output_dir={output_dir}"],  # fmt: skip
        cwd=ROOT,
        env=subprocess_env(threads),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def finish(process, output_dir, timeout=300):
    try:
        rc = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    if rc != 0:
        with open(output_dir + ".log") as f:
            pytest.fail(f"train_net.py exited with {rc}:\n{f.read()[-5000:]}")


def read_metrics(output_dir):
    """{iteration: metrics}; a later line for the same iteration (the resumed run) wins."""
    out = {}
    with open(os.path.join(output_dir, "metrics.json")) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                out[entry["iteration"]] = entry
    return out


def last_checkpoint(output_dir):
    try:
        with open(os.path.join(output_dir, "last_checkpoint")) as f:
            return f.read().strip()
    except OSError:
        return None


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    config = write_config(str(tmp_path))
    reference_dir = str(tmp_path / "reference")
    killed_dir = str(tmp_path / "killed")

    # The uninterrupted run and the run to kill run side by side (one thread each).
    reference = start_train_net(config, reference_dir)
    victim = start_train_net(config, killed_dir)
    try:
        # Kill as soon as the half-way checkpoint (after iteration 2) is complete: the
        # last_checkpoint tag is written only after the checkpoint file.
        deadline = time.time() + 300
        while last_checkpoint(killed_dir) != "model_0000002.pth":
            assert victim.poll() is None, "the run to kill ended by itself"
            assert time.time() < deadline, "no half-way checkpoint after 300 s"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=60) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    assert not os.path.exists(os.path.join(killed_dir, "model_final.pth"))
    assert last_checkpoint(killed_dir) == "model_0000002.pth"

    resumed = start_train_net(config, killed_dir, "--resume")
    finish(resumed, killed_dir)
    finish(reference, reference_dir)
    with open(killed_dir + ".log") as f:
        assert "Starting training from iteration 3" in f.read()

    ref, res = read_metrics(reference_dir), read_metrics(killed_dir)
    for iteration in range(3, 6):
        for key in LOSSES + ("num_pos_cls", "num_pos_reg"):
            assert res[iteration][key] == pytest.approx(ref[iteration][key], rel=1e-6, abs=1e-7), (
                iteration, key, res[iteration][key], ref[iteration][key],
            )  # fmt: skip
        weights = [k for k in ref[iteration] if k.startswith("level_weight/")]
        assert len(weights) == 10
        for key in weights:
            assert res[iteration][key] == pytest.approx(ref[iteration][key], rel=1e-6), key
        assert res[iteration]["lr"] == pytest.approx(ref[iteration]["lr"])

    a = torch.load(os.path.join(reference_dir, "model_final.pth"), weights_only=True)
    b = torch.load(os.path.join(killed_dir, "model_final.pth"), weights_only=True)
    assert a["iteration"] == b["iteration"] == 5
    for name in ("level_reweighting.cls_pos_count", "level_reweighting.reg_pos_count"):
        assert a["model"][name].sum() > 0
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.allclose(value.double(), b["model"][key].double(), rtol=1e-5, atol=1e-6), key
    assert a["trainer"]["data_loader"] == b["trainer"]["data_loader"]
