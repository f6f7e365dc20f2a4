"""VFNet and DDOD + VFL train on the digits dataset through train_net.py (a few iterations, then
the end-of-training evaluation), with their quickstart configs."""
import json
import math
import os

import pytest

import ddod  # noqa: F401
from detectron2.data import DatasetCatalog
from detectron2.engine import default_argument_parser

from ddod.data import register_digits_dataset

from .common import ROOT, load_train_net

CONFIGS = {
    "vfnet_digits_cpu.py": {"loss_cls", "loss_bbox", "loss_bbox_init"},
    "ddod_vfl_digits_cpu.py": {"loss_cls", "loss_bbox", "loss_iou"},
    "vfnet_ddod_assign_digits_cpu.py": {"loss_cls", "loss_bbox", "loss_bbox_init"},
}


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("digits"))
    names = {"train": "vfnet_e2e_digits_train", "val": "vfnet_e2e_digits_val"}
    for split, name in names.items():
        if name not in DatasetCatalog.list():
            register_digits_dataset(name, split=split, num_images=4, root=root)
    return names


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_trains_and_evaluates_through_train_net(config, tmp_path, tiny_digits):
    out = str(tmp_path / "run")
    argv = [
        "--config-file", os.path.join(ROOT, "configs", "quickstart", config),
        f"train.output_dir={out}",
        "train.max_iter=3",
        "train.checkpointer.period=100",
        "train.log_period=1",
        "train.seed=7",
        "dataloader.train.total_batch_size=2",
        f"dataloader.train.dataset.names={tiny_digits['train']}",
        f"dataloader.test.dataset.names={tiny_digits['val']}",
    ]  # fmt: skip
    results = load_train_net().main(default_argument_parser().parse_args(argv))
    assert "AP" in results["bbox"]
    with open(os.path.join(out, "metrics.json")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    steps = [r for r in records if "total_loss" in r]
    assert [r["iteration"] for r in steps] == [0, 1, 2]
    for r in steps:
        assert CONFIGS[config] <= set(r), set(r)
        assert all(math.isfinite(r[k]) for k in CONFIGS[config])
    assert os.path.exists(os.path.join(out, "model_final.pth"))
