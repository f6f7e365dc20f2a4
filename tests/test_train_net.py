"""End to end through train_net.py on the built-in digits dataset: train -> checkpoint -> resume
-> eval-only, with DDOD's level statistics carried by the checkpoints."""
import json
import os

import pytest
import torch

import ddod  # noqa: F401
from detectron2.data import DatasetCatalog

from ddod.data import register_digits_dataset

from .common import load_train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("digits"))
    names = {"train": "e2e_digits_train", "val": "e2e_digits_val"}
    for split, name in names.items():
        if name not in DatasetCatalog.list():
            register_digits_dataset(name, split=split, num_images=8 if split == "train" else 4, root=root)
    return names


def run(train_net, argv):
    args = train_net.build_argument_parser().parse_args(argv)
    return train_net.main(args)


def overrides(out, names, max_iter):
    return [
        f"train.output_dir={out}",
        f"train.max_iter={max_iter}",
        "train.checkpointer.period=3",
        "train.log_period=1",
        "train.seed=7",
        "dataloader.train.total_batch_size=2",
        f"dataloader.train.dataset.names={names['train']}",
        f"dataloader.test.dataset.names={names['val']}",
    ]


def read_metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def test_train_checkpoint_resume_and_eval_only(tmp_path, tiny_digits):
    train_net = load_train_net()
    out = str(tmp_path / "run")

    results = run(train_net, ["--config-file", CONFIG] + overrides(out, tiny_digits, 6))
    assert "bbox" in results and "AP" in results["bbox"]
    for f in ("model_0000002.pth", "model_0000005.pth", "model_final.pth", "last_checkpoint",
              "config.yaml", "metrics.json"):  # fmt: skip
        assert os.path.exists(os.path.join(out, f)), f
    ckpt = torch.load(os.path.join(out, "model_final.pth"), map_location="cpu")
    counts_at_6 = ckpt["model"]["level_reweighting.cls_pos_count"].clone()
    assert counts_at_6.dtype == torch.float64 and counts_at_6.sum() > 0
    assert ckpt["trainer"]["_trainer"]["optimizer"]["state"], "optimizer state not checkpointed"
    assert ckpt["iteration"] == 5
    losses = [m["total_loss"] for m in read_metrics(out) if "total_loss" in m]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))

    # Resume to 9 iterations: continues at iteration 6 with the accumulated statistics.
    run(train_net, ["--config-file", CONFIG, "--resume"] + overrides(out, tiny_digits, 9))
    iters = [m["iteration"] for m in read_metrics(out) if "total_loss" in m]
    assert iters == list(range(9)), iters
    ckpt = torch.load(os.path.join(out, "model_final.pth"), map_location="cpu")
    assert ckpt["iteration"] == 8
    resumed = ckpt["model"]["level_reweighting.cls_pos_count"]
    assert (resumed >= counts_at_6).all() and resumed.sum() > counts_at_6.sum()

    # Evaluate the final weights alone.
    eval_out = str(tmp_path / "eval")
    results = run(
        train_net,
        ["--config-file", CONFIG, "--eval-only",
         f"train.init_checkpoint={os.path.join(out, 'model_final.pth')}"]
        + overrides(eval_out, tiny_digits, 9),
    )  # fmt: skip
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
