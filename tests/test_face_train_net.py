"""DDOD-Face end to end through train_net.py on a synthetic WIDER-format set (images, txt and
the evaluation kit's .mat files): a few training iterations of the CPU-size face config, then
--eval-only, which prints the easy / medium / hard table and writes the official txt files."""
import os

import pytest
import torch

import ddod  # noqa: F401
from detectron2.data import DatasetCatalog

from ddod.data import register_widerface, write_synthetic_widerface
from ddod.evaluation import load_widerface_eval_gt, read_widerface_predictions

from .common import LogCapture, load_train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart", "ddod_face_tiny_cpu.py")


@pytest.fixture(scope="module")
def synthetic_widerface(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("widerface"))
    write_synthetic_widerface(root, num_train=6, num_val=4)
    names = {"train": "e2e_widerface_train", "val": "e2e_widerface_val"}
    for split, name in names.items():
        if name not in DatasetCatalog.list():
            register_widerface(name, root, split)
    return root, names


def run(train_net, argv):
    return train_net.main(train_net.build_argument_parser().parse_args(argv))


def test_face_config_trains_and_evaluates_with_the_official_protocol(tmp_path, synthetic_widerface):
    root, names = synthetic_widerface
    train_net = load_train_net()
    out = str(tmp_path / "run")
    common = [
        f"dataloader.train.dataset.names={names['train']}",
        f"dataloader.test.dataset.names={names['val']}",
        "train.log_period=1",
        # smaller crops than the config's 128: this checks the flow, not the detector
        "dataloader.train.mapper.augmentations.1.shape=[96,96]",
    ]
    results = run(
        train_net,
        ["--config-file", CONFIG, f"train.output_dir={out}", "train.max_iter=2"] + common,
    )
    assert set(results["widerface"]) == {"easy", "medium", "hard"}
    ckpt = torch.load(os.path.join(out, "model_final.pth"), map_location="cpu")
    assert "backbone.ssh.p2.conv3x3.weight" in ckpt["model"]

    eval_out = str(tmp_path / "eval")
    with LogCapture("ddod.evaluation.widerface") as log:
        results = run(
            train_net,
            ["--config-file", CONFIG, "--eval-only", f"train.output_dir={eval_out}",
             f"train.init_checkpoint={os.path.join(out, 'model_final.pth')}"] + common,
        )  # fmt: skip
    table = log.text.split("(official protocol):\n", 1)[1].splitlines()
    assert table[0].split() == ["|", "Easy", "|", "Medium", "|", "Hard", "|"]
    aps = results["widerface"]
    assert all(0.0 <= aps[s] <= 100.0 for s in ("easy", "medium", "hard"))
    # one submission file per val image, readable back, keyed like the kit's ground truth
    txt_dir = os.path.join(eval_out, "inference", "widerface_txt")
    predictions = read_widerface_predictions(txt_dir)
    gt_boxes, _ = load_widerface_eval_gt(os.path.join(root, "eval_tools", "ground_truth"))
    assert set(predictions) == set(gt_boxes)
