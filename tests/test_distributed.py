"""Two CPU processes (GLOO, started by detectron2's own ``launch``, which ddod.compat lets run
without CUDA): DDOD's level statistics, level factors and loss normaliser are the same on every
process, the normaliser is the all-reduced positive count, and the weights stay identical.
``train_net.py --num-gpus 2 train.device=cpu`` trains the same way."""
import os
from datetime import timedelta

import pytest
import torch
from omegaconf import OmegaConf

import ddod  # noqa: F401  (patches detectron2's launch for CPU-only machines)
from detectron2.config import LazyConfig
from detectron2.engine import launch
from detectron2.utils.events import EventStorage

from ddod.engine import Trainer

from .common import make_input, tiny_ddod
from .test_resume import finish, read_metrics, start_train_net, write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4

# Different objects on each process and step (and an image without objects), so that the local
# positive counts differ between the processes.
BOXES = {
    0: [[[20, 20, 100, 90]], [[10, 40, 60, 120], [70, 10, 120, 60]]],
    1: [[], [[30, 30, 110, 110], [5, 5, 40, 50], [60, 70, 126, 126]]],
}


def _batch(rank, step):
    return [
        make_input(128, 128, boxes, [i % 4 for i in range(len(boxes))], seed=100 * rank + step + j)
        for j, boxes in enumerate(BOXES[rank])
    ]


def _consistency_worker(out_dir):
    """Runs in each spawned process: a few DDP steps of a tiny DDOD, recording what it saw."""
    import ddod.modeling.meta_arch.ddod as ddod_module
    from detectron2.utils import comm

    torch.set_num_threads(1)
    rank = comm.get_rank()
    torch.manual_seed(1000 + rank)  # different initial weights: DDP must broadcast rank 0's
    model = tiny_ddod(num_classes=4)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train_cfg = LazyConfig.load(os.path.join(ROOT, "configs", "common", "train.py"), "train")
    ddp_model = Trainer.create_ddp_model(OmegaConf.create({"train": train_cfg}), model)
    assert isinstance(ddp_model, torch.nn.parallel.DistributedDataParallel)
    assert ddp_model.device_ids is None  # a CPU module: no device_ids

    record = {"normalizers": [], "levels": [], "initial": initial}
    positive_normalizer = ddod_module.positive_normalizer

    def spy_normalizer(pos_mask):
        out = positive_normalizer(pos_mask)
        local = float(pos_mask.sum(dim=1).clamp(min=1).sum())
        record["normalizers"].append((local, float(out)))
        return out

    ddod_module.positive_normalizer = spy_normalizer
    level_forward = model.level_reweighting.forward

    def spy_levels(branch, counts):
        factors = level_forward(branch, counts)
        record["levels"].append((branch, counts.tolist(), factors.tolist()))
        return factors

    model.level_reweighting.forward = spy_levels
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.01, momentum=0.9)
    for step in range(STEPS):
        with EventStorage(step):
            losses = ddp_model(_batch(rank, step))
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    record["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(record, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_processes_share_statistics_normaliser_and_weights(tmp_path):
    launch(
        _consistency_worker,
        2,
        dist_url="auto",
        args=(str(tmp_path),),
        timeout=timedelta(minutes=2),
    )
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))

    # The two processes started from different weights...
    key = "head.cls_score.weight"
    assert not torch.equal(r0["initial"][key], r1["initial"][key])
    # ...and hold identical parameters after the steps (DDP broadcast + all-reduced gradients).
    params = [k for k in r0["state"] if "level_reweighting" not in k and "running" not in k
              and "num_batches" not in k]  # fmt: skip
    for key in params:
        assert torch.equal(r0["state"][key], r1["state"][key]), key

    # Loss normaliser: every call (cls and reg, every step) returns, on both processes, the mean
    # over processes of sum_img max(#pos, 1).
    assert len(r0["normalizers"]) == len(r1["normalizers"]) == 2 * STEPS
    locals_differ = False
    for (local0, out0), (local1, out1) in zip(r0["normalizers"], r1["normalizers"]):
        assert out0 == out1 == pytest.approx((local0 + local1) / 2)
        locals_differ |= local0 != local1
    assert locals_differ, "the test needs different positive counts on the two processes"

    # Level statistics: both processes accumulated the sum of both processes' counts, and used
    # the same factors at every step.
    totals = {b: torch.zeros(5, dtype=torch.float64) for b in ("cls", "reg")}
    assert len(r0["levels"]) == len(r1["levels"]) == 2 * STEPS
    for (branch, counts0, factors0), (branch1, counts1, factors1) in zip(
        r0["levels"], r1["levels"]
    ):
        assert branch == branch1
        totals[branch] += torch.tensor(counts0, dtype=torch.float64)
        totals[branch] += torch.tensor(counts1, dtype=torch.float64)
        assert factors0 == factors1
    for branch in ("cls", "reg"):
        key = f"level_reweighting.{branch}_pos_count"
        assert torch.equal(r0["state"][key], r1["state"][key])
        assert torch.equal(r0["state"][key], totals[branch]), (branch, r0["state"][key])
        assert totals[branch].sum() > 0


def test_train_net_with_two_cpu_processes(tmp_path):
    config = write_config(str(tmp_path), max_iter=4, period=2)
    out = str(tmp_path / "run")
    process = start_train_net(config, out, "--num-gpus", "2", "--dist-url", "auto",
                              "train.device=cpu")  # fmt: skip
    finish(process, out)
    with open(out + ".log") as f:
        log = f.read()
    assert "World size: 2" in log
    metrics = read_metrics(out)
    assert [i for i in sorted(metrics) if "total_loss" in metrics[i]] == [0, 1, 2, 3]
    ckpt = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert ckpt["iteration"] == 3
    assert ckpt["model"]["level_reweighting.cls_pos_count"].sum() > 0
    assert ckpt["trainer"]["data_loader"]["total_batch_size"] == 2
