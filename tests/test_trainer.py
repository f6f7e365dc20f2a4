"""Tests of the training plumbing (ddod.engine, train_net.py, configs/common) on a tiny model.

Everything runs on the CPU in a few seconds: the model is a two-layer MLP shaped like a detector
(a list of dicts in; a loss dict in training, a list of dicts in inference) with a buffer that
accumulates during training, standing in for DDOD's per-level statistics.
"""

import json
import math
import os
import shutil
import unittest

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

import ddod  # noqa: F401  (applies ddod.compat before detectron2 is imported)
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig
from detectron2.evaluation import DatasetEvaluator

from ddod.engine import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigOverrideError,
    CPUAutocastTrainer,
    DetectionCheckpointer,
    Trainer,
)

from .common import load_train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_FEATURES = 4
NUM_CLASSES = 3
BATCH_SIZE = 4


train_net = load_train_net()


# ---------------------------------------------------------------------------------------------
# A tiny detector-shaped model, data and evaluator
# ---------------------------------------------------------------------------------------------
class TinyDetector(nn.Module):
    """list[{"x": (IN_FEATURES,) tensor, "y": int}] -> loss dict (training) / list[dict]."""

    def __init__(self, *, in_features=IN_FEATURES, num_classes=NUM_CLASSES, hidden=8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.GroupNorm(2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        self.register_buffer("pixel_mean", torch.zeros(in_features))
        # Accumulates in training, like DDOD's per-level positive counts: must be checkpointed.
        self.register_buffer("num_images_seen", torch.zeros((), dtype=torch.float64))
        self.autocast_dtype_seen = None

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        x = torch.stack([d["x"] for d in batched_inputs]).to(self.device) - self.pixel_mean
        logits = self.net(x)
        if not self.training:
            return [{"scores": s.softmax(-1)} for s in logits]
        if torch.is_autocast_enabled("cpu"):
            self.autocast_dtype_seen = torch.get_autocast_dtype("cpu")
        self.num_images_seen += len(batched_inputs)
        y = torch.tensor([d["y"] for d in batched_inputs], device=self.device)
        return {
            "loss_cls": F.cross_entropy(logits.float(), y),
            "loss_reg": 0.01 * logits.float().pow(2).mean(),
        }


class NaNAfter(TinyDetector):
    """Its classification loss becomes NaN from iteration ``nan_at`` (counted in forward calls)."""

    def __init__(self, nan_at=2, **kwargs):
        super().__init__(**kwargs)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, batched_inputs):
        out = super().forward(batched_inputs)
        if self.training:
            if self.calls >= self.nan_at:
                out["loss_cls"] = out["loss_cls"] * float("nan")
            self.calls += 1
        return out


class ToyLoader:
    """An endless stream of one fixed batch; with ``crash_after``, raises like a killed job."""

    def __init__(self, crash_after=None, seed=0):
        self.crash_after = crash_after
        self.seed = seed

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        batch = [
            {"x": torch.randn(IN_FEATURES, generator=generator), "y": i % NUM_CLASSES}
            for i in range(BATCH_SIZE)
        ]
        num_batches = 0
        while True:
            if self.crash_after is not None and num_batches >= self.crash_after:
                raise RuntimeError("simulated crash")
            yield batch
            num_batches += 1


def make_test_set(num_batches=3):
    generator = torch.Generator().manual_seed(1)
    return [
        [{"x": torch.randn(IN_FEATURES, generator=generator), "y": 0}] for _ in range(num_batches)
    ]


EVALUATE_CALLS = []


class CountingEvaluator(DatasetEvaluator):
    """Counts images; its "AP" is the number of images seen, so every result is predictable."""

    def reset(self):
        self.num_images = 0

    def process(self, inputs, outputs):
        self.num_images += len(outputs)

    def evaluate(self):
        EVALUATE_CALLS.append(self.num_images)
        return {"bbox": {"AP": float(self.num_images), "AP50": 50.0}}


def make_cfg(output_dir, **train):
    """A LazyConfig with the standard keys, built from the project's configs/common files."""
    common = os.path.join(ROOT, "configs", "common")
    train_cfg = LazyConfig.load(os.path.join(common, "train.py"), "train")
    optimizer = LazyConfig.load(os.path.join(common, "optim.py"), "SGD")
    multistep_schedule = LazyConfig.load(os.path.join(common, "schedule.py"), "multistep_schedule")

    train_cfg.update(
        output_dir=str(output_dir),
        max_iter=6,
        device="cpu",
        checkpointer=dict(period=2, max_to_keep=100),
        eval_period=0,
        log_period=1,
    )
    train_cfg.update(train)
    optimizer.lr = 0.1
    return OmegaConf.create(
        dict(
            model=L(TinyDetector)(),
            optimizer=optimizer,
            # LR changes within the run (warm-up, then steps at 4 and 5), so a resume that got
            # the LR wrong would show.
            lr_multiplier=multistep_schedule(train_cfg.max_iter, warmup_iters=2),
            dataloader=dict(
                train=L(ToyLoader)(),
                test=L(make_test_set)(),
                evaluator=L(CountingEvaluator)(),
            ),
            train=train_cfg,
        ),
        flags={"allow_objects": True},
    )


def read_metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def model_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_same_state(test, a, b):
    test.assertEqual(a.keys(), b.keys())
    for k in a:
        test.assertTrue(torch.equal(a[k], b[k]), k)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
class TestTrainer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One 6-iteration reference run, shared by the tests that only read its outputs.
        import tempfile

        cls.root = tempfile.mkdtemp(prefix="ddod_test_trainer_")
        cls.ref_dir = os.path.join(cls.root, "reference")
        torch.manual_seed(0)
        trainer = Trainer(make_cfg(cls.ref_dir))
        trainer.resume_or_load(resume=False)
        trainer.train()
        cls.ref_final = model_state(trainer)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def tmpdir(self, name):
        path = os.path.join(self.root, self.id().split(".")[-1], name)
        os.makedirs(path, exist_ok=True)
        return path

    def test_training_writes_metrics_and_checkpoints(self):
        files = set(os.listdir(self.ref_dir))
        for name in ["model_0000001.pth", "model_0000003.pth", "model_0000005.pth"]:
            self.assertIn(name, files)
        self.assertIn("model_final.pth", files)
        self.assertIn("last_checkpoint", files)
        self.assertTrue(any(f.startswith("events.out.tfevents") for f in files))
        with open(os.path.join(self.ref_dir, "last_checkpoint")) as f:
            self.assertEqual(f.read().strip(), "model_final.pth")

        metrics = read_metrics(self.ref_dir)
        self.assertEqual([m["iteration"] for m in metrics if "total_loss" in m], list(range(6)))
        for m in metrics:
            if "total_loss" in m:
                self.assertTrue(math.isfinite(m["total_loss"]))
                self.assertIn("lr", m)
                self.assertIn("loss_cls", m)
        lrs = [m["lr"] for m in metrics if "lr" in m]
        self.assertAlmostEqual(lrs[0], 0.1 * 0.001)  # warm-up starts at 0.001 x lr
        self.assertAlmostEqual(lrs[-1], 0.1 * 0.01)  # two x0.1 steps by iteration 5
        self.assertEqual(self.ref_final["num_images_seen"].item(), 6 * BATCH_SIZE)

    def test_checkpoint_contents(self):
        # Our own checkpoints must load with torch's safe default (weights_only=True).
        ckpt = torch.load(
            os.path.join(self.ref_dir, "model_0000003.pth"), map_location="cpu", weights_only=True
        )
        self.assertEqual(set(ckpt.keys()), {"model", "trainer", "iteration"})
        self.assertEqual(ckpt["iteration"], 3)
        self.assertEqual(ckpt["model"]["num_images_seen"].item(), 4 * BATCH_SIZE)
        self.assertIn("net.0.weight", ckpt["model"])

        trainer_state = ckpt["trainer"]
        self.assertEqual(trainer_state["iteration"], 3)
        self.assertEqual(trainer_state["hooks"]["LRScheduler"]["last_epoch"], 4)
        inner = trainer_state["_trainer"]
        optimizer_state = inner["optimizer"]
        self.assertEqual(len(optimizer_state["state"]), 6)  # every parameter has momentum
        for state in optimizer_state["state"].values():
            self.assertIn("momentum_buffer", state)
        self.assertNotIn("grad_scaler", inner)  # SimpleTrainer: no AMP

    def test_resume_after_crash_matches_uninterrupted_run(self):
        output_dir = self.tmpdir("run")
        torch.manual_seed(0)
        cfg = make_cfg(output_dir)
        cfg.dataloader.train.crash_after = 4  # iterations 0-3 run; checkpoint after iteration 3
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=True)  # nothing to resume yet: starts at 0
        self.assertEqual(trainer.start_iter, 0)
        with self.assertRaisesRegex(RuntimeError, "simulated crash"):
            trainer.train()
        saved = torch.load(os.path.join(output_dir, "model_0000003.pth"), weights_only=True)
        saved_momentum = saved["trainer"]["_trainer"]["optimizer"]["state"]

        torch.manual_seed(123)  # a different initialisation, overwritten by the resume
        resumed = Trainer(make_cfg(output_dir))
        resumed.resume_or_load(resume=True)
        self.assertEqual(resumed.iter, 3)
        self.assertEqual(resumed.start_iter, 4)
        self.assertEqual(resumed.model.num_images_seen.item(), 4 * BATCH_SIZE)
        restored = resumed.optimizer.state_dict()
        self.assertEqual(restored["state"].keys(), saved_momentum.keys())
        for key, state in saved_momentum.items():
            self.assertTrue(
                torch.equal(restored["state"][key]["momentum_buffer"], state["momentum_buffer"])
            )
        self.assertEqual(
            restored["param_groups"][0]["lr"],
            saved["trainer"]["_trainer"]["optimizer"]["param_groups"][0]["lr"],
        )

        resumed.train()
        self.assertEqual(resumed.model.num_images_seen.item(), 6 * BATCH_SIZE)
        final = model_state(resumed)
        for k, v in self.ref_final.items():
            self.assertTrue(torch.allclose(final[k], v, atol=1e-6), k)

        # The LR logged after the resume follows the schedule of the uninterrupted run.
        ref_lr = {m["iteration"]: m["lr"] for m in read_metrics(self.ref_dir) if "lr" in m}
        lr = {m["iteration"]: m["lr"] for m in read_metrics(output_dir) if "lr" in m}
        for iteration in (4, 5):
            self.assertAlmostEqual(lr[iteration], ref_lr[iteration])

    def test_metrics_after_resume_equal_uninterrupted_run(self):
        # The smoothed (median over train.metrics_window) losses that metrics.json holds after a
        # resume are those of the uninterrupted run: the windows are checkpointed.
        output_dir = self.tmpdir("run")
        cfg = make_cfg(output_dir)
        cfg.dataloader.train.crash_after = 4
        torch.manual_seed(0)
        with self.assertRaisesRegex(RuntimeError, "simulated crash"):
            Trainer(cfg).train()
        ckpt = torch.load(os.path.join(output_dir, "model_0000003.pth"), weights_only=True)
        self.assertEqual(
            [i for _, i in ckpt["trainer"]["metrics_history"]["loss_cls"]], [0.0, 1.0, 2.0, 3.0]
        )
        resumed = Trainer(make_cfg(output_dir))
        resumed.resume_or_load(resume=True)
        resumed.train()

        def losses(directory):
            out = {}
            for m in read_metrics(directory):
                if "total_loss" in m:
                    out[m["iteration"]] = (m["total_loss"], m["loss_cls"], m["loss_reg"])
            return out

        ref, res = losses(self.ref_dir), losses(output_dir)
        self.assertEqual(sorted(res), list(range(6)))
        for iteration in (4, 5):
            for a, b in zip(ref[iteration], res[iteration]):
                self.assertAlmostEqual(a, b, places=6)

    def test_non_finite_loss_stops_before_the_step_naming_the_loss(self):
        output_dir = self.tmpdir("out")
        cfg = make_cfg(output_dir, max_iter=5, checkpointer=dict(period=1, max_to_keep=100))
        cfg.model = L(NaNAfter)(nan_at=3)
        torch.manual_seed(0)
        trainer = Trainer(cfg)
        with self.assertRaises(FloatingPointError) as ctx:
            trainer.train()
        message = str(ctx.exception)
        self.assertIn("Loss became infinite or NaN at iteration=3: loss_cls=nan", message)
        self.assertIn("loss_reg=", message)  # the finite ones are listed too
        # No optimizer step was taken with the NaN: the weights are those after iteration 2.
        saved = torch.load(os.path.join(output_dir, "model_0000002.pth"), weights_only=True)
        for key, value in trainer.model.state_dict().items():
            if key != "num_images_seen":
                self.assertTrue(torch.equal(value, saved["model"][key]), key)
        self.assertFalse(os.path.exists(os.path.join(output_dir, "model_final.pth")))

    def test_corrupt_or_truncated_checkpoint(self):
        good = os.path.join(self.ref_dir, "model_0000003.pth")
        with open(good, "rb") as f:
            content = f.read()
        broken_dir = self.tmpdir("broken")
        garbage = os.path.join(broken_dir, "garbage.pth")
        truncated = os.path.join(broken_dir, "truncated.pth")
        empty = os.path.join(broken_dir, "empty.pth")
        truncated_pkl = os.path.join(broken_dir, "truncated.pkl")
        with open(garbage, "wb") as f:
            f.write(b"this is not a checkpoint" * 10)
        with open(truncated, "wb") as f:
            f.write(content[: len(content) // 2])
        open(empty, "wb").close()
        with open(truncated_pkl, "wb") as f:
            f.write(b"\x80\x04\x95\x10\x00\x00\x00")

        for path, reason in [
            (garbage, "truncated or corrupt"),
            (truncated, "truncated or corrupt"),
            (empty, "empty"),
            (truncated_pkl, "truncated or corrupt"),
        ]:
            with self.subTest(path=os.path.basename(path)):
                torch.manual_seed(0)
                trainer = Trainer(make_cfg(self.tmpdir("out"), init_checkpoint=path))
                before = model_state(trainer)
                with self.assertRaises(CheckpointError) as ctx:
                    trainer.resume_or_load(resume=False)
                self.assertIn(path, str(ctx.exception))
                self.assertIn(reason, str(ctx.exception))
                assert_same_state(self, before, model_state(trainer))

    def test_resume_from_truncated_last_checkpoint(self):
        output_dir = self.tmpdir("out")
        with open(os.path.join(self.ref_dir, "model_0000003.pth"), "rb") as f:
            content = f.read()
        with open(os.path.join(output_dir, "model_0000003.pth"), "wb") as f:
            f.write(content[:1000])
        with open(os.path.join(output_dir, "last_checkpoint"), "w") as f:
            f.write("model_0000003.pth")
        trainer = Trainer(make_cfg(output_dir))
        before = model_state(trainer)
        with self.assertRaisesRegex(CheckpointError, "model_0000003.pth.*truncated or corrupt"):
            trainer.resume_or_load(resume=True)
        assert_same_state(self, before, model_state(trainer))
        self.assertEqual(trainer.start_iter, 0)

        os.remove(os.path.join(output_dir, "model_0000003.pth"))
        with self.assertRaisesRegex(CheckpointNotFoundError, "last_checkpoint.*does not exist"):
            trainer.resume_or_load(resume=True)

    def test_checkpoint_that_does_not_fit_leaves_model_unchanged(self):
        ckpt = torch.load(os.path.join(self.ref_dir, "model_0000003.pth"), weights_only=True)
        ckpt["model"] = {k: v + 1 for k, v in ckpt["model"].items()}
        groups = ckpt["trainer"]["_trainer"]["optimizer"]["param_groups"]
        ckpt["trainer"]["_trainer"]["optimizer"]["param_groups"] = groups + groups
        output_dir = self.tmpdir("out")
        torch.save(ckpt, os.path.join(output_dir, "model_0000003.pth"))
        with open(os.path.join(output_dir, "last_checkpoint"), "w") as f:
            f.write("model_0000003.pth")

        trainer = Trainer(make_cfg(output_dir))
        before = model_state(trainer)
        with self.assertRaisesRegex(CheckpointError, "Failed to apply checkpoint .*restored"):
            trainer.resume_or_load(resume=True)
        assert_same_state(self, before, model_state(trainer))

    def test_missing_init_checkpoint(self):
        missing = os.path.join(self.root, "no_such_dir", "weights.pth")
        trainer = Trainer(make_cfg(self.tmpdir("out"), init_checkpoint=missing))
        with self.assertRaises(FileNotFoundError) as ctx:
            trainer.resume_or_load(resume=False)
        self.assertIsInstance(ctx.exception, CheckpointNotFoundError)
        self.assertIn(missing, str(ctx.exception))
        self.assertIn("does not exist", str(ctx.exception))

    def test_init_checkpoint_formats(self):
        # Loading only weights: a detectron2-format .pkl with numpy arrays, and a bare state_dict.
        import pickle

        weights = {k: v.numpy() for k, v in self.ref_final.items()}
        pkl = os.path.join(self.tmpdir("weights"), "weights.pkl")
        with open(pkl, "wb") as f:
            pickle.dump({"model": weights, "__author__": "test"}, f)
        bare = os.path.join(self.tmpdir("weights"), "bare.pth")
        torch.save(self.ref_final, bare)
        for path in (pkl, bare):
            with self.subTest(path=os.path.basename(path)):
                torch.manual_seed(5)
                trainer = Trainer(make_cfg(self.tmpdir("out"), init_checkpoint=path))
                trainer.resume_or_load(resume=False)
                assert_same_state(self, self.ref_final, model_state(trainer))
                self.assertEqual(trainer.start_iter, 0)

        # A .pth that pickles arbitrary objects is refused unless the caller trusts it.
        unsafe = os.path.join(self.tmpdir("weights"), "unsafe.pth")
        torch.save({"model": dict(self.ref_final), "extra": CountingEvaluator()}, unsafe)
        model = TinyDetector()
        with self.assertRaisesRegex(CheckpointError, "DDOD_CHECKPOINT_WEIGHTS_ONLY=0"):
            DetectionCheckpointer(model).load(unsafe)
        DetectionCheckpointer(model, weights_only=False).load(unsafe)
        assert_same_state(self, self.ref_final, model.state_dict())

    def test_bf16_autocast_on_cpu(self):
        from unittest import mock

        cfg = make_cfg(self.tmpdir("out"), max_iter=2)
        cfg.train.amp.enabled = True
        # Forced: on a CPU without native bf16 the trainer would fall back to fp32
        # (tests/test_cpu_precision.py); this test is about the bf16 loop itself.
        with mock.patch.dict(os.environ, {"DDOD_CPU_BF16": "1"}):
            trainer = Trainer(cfg)
        self.assertIsInstance(trainer._trainer, CPUAutocastTrainer)
        trainer.train()
        self.assertEqual(trainer.model.autocast_dtype_seen, torch.bfloat16)
        loss = trainer.storage.history("total_loss").latest()
        self.assertTrue(math.isfinite(loss))
        ckpt = torch.load(os.path.join(cfg.train.output_dir, "model_final.pth"), weights_only=True)
        self.assertIn("optimizer", ckpt["trainer"]["_trainer"])

    def test_writers_without_tensorboard(self):
        from unittest import mock

        def tensorboard_missing(*args, **kwargs):
            raise ImportError("No module named 'tensorboard'")

        output_dir = self.tmpdir("out")
        with mock.patch("ddod.engine.trainer.TensorboardXWriter", tensorboard_missing):
            trainer = Trainer(make_cfg(output_dir, max_iter=2))
            writers = [type(w).__name__ for w in trainer.build_writers()]
        self.assertEqual(writers, ["CommonMetricPrinter", "JSONWriter"])
        trainer.train()
        self.assertEqual([m["iteration"] for m in read_metrics(output_dir) if "lr" in m], [0, 1])
        self.assertFalse(any(f.startswith("events.out") for f in os.listdir(output_dir)))

    @unittest.skipUnless(torch.cuda.is_available(), "needs CUDA")
    def test_amp_on_cuda_checkpoints_grad_scaler(self):
        from detectron2.engine import AMPTrainer

        output_dir = self.tmpdir("out")
        cfg = make_cfg(output_dir, max_iter=4, device="cuda")
        cfg.train.amp.enabled = True
        trainer = Trainer(cfg)
        self.assertIsInstance(trainer._trainer, AMPTrainer)
        self.assertEqual(trainer.model.device.type, "cuda")
        trainer.train()
        ckpt = torch.load(os.path.join(output_dir, "model_final.pth"), weights_only=True)
        scaler_state = ckpt["trainer"]["_trainer"]["grad_scaler"]

        cfg = make_cfg(output_dir, max_iter=6, device="cuda")
        cfg.train.amp.enabled = True
        resumed = Trainer(cfg)
        resumed.resume_or_load(resume=True)
        self.assertEqual(resumed.start_iter, 4)
        self.assertEqual(resumed._trainer.grad_scaler.get_scale(), scaler_state["scale"])
        resumed.train()
        self.assertEqual(resumed.model.num_images_seen.item(), 6 * BATCH_SIZE)

    def test_eval_period_runs_test(self):
        del EVALUATE_CALLS[:]
        output_dir = self.tmpdir("out")
        cfg = make_cfg(
            output_dir,
            max_iter=4,
            eval_period=2,
            best_checkpointer=dict(val_metric="bbox/AP", mode="max"),
        )
        trainer = Trainer(cfg)
        results = trainer.train()
        self.assertEqual(EVALUATE_CALLS, [3, 3])  # after iteration 2 and at the end
        self.assertEqual(results, {"bbox": {"AP": 3.0, "AP50": 50.0}})
        evaluated = [m["iteration"] for m in read_metrics(output_dir) if "bbox/AP" in m]
        self.assertEqual(evaluated, [1, 4])  # detectron2 stores the final eval at max_iter
        self.assertTrue(os.path.isfile(os.path.join(output_dir, "model_best.pth")))
        with open(os.path.join(output_dir, "last_checkpoint")) as f:
            # The best model does not take over `last_checkpoint`, which resumes must follow.
            self.assertEqual(f.read().strip(), "model_final.pth")

        # eval_period=0: only at the end.
        del EVALUATE_CALLS[:]
        Trainer(make_cfg(self.tmpdir("out0"), max_iter=3, eval_period=0)).train()
        self.assertEqual(EVALUATE_CALLS, [3])

        # Trainer.test with explicit evaluators (as --eval-only does with the config's).
        del EVALUATE_CALLS[:]
        results = Trainer.test(cfg, trainer.model, evaluators=[CountingEvaluator()])
        self.assertEqual(results["bbox"]["AP"], 3.0)


TRAIN_NET_CONFIG = """
import torch
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig

train = LazyConfig.load({train_py!r}, "train")
train.output_dir = {output_dir!r}
train.device = "cpu"


def build_detector(backbone, head):
    return torch.nn.Sequential(backbone, head)


model = L(build_detector)(
    backbone=L(torch.nn.Linear)(in_features=4, out_features=8),
    head=L(torch.nn.Linear)(in_features=8, out_features=2),
)
"""


class TestTrainNet(unittest.TestCase):
    def setUp(self):
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="ddod_test_train_net_")
        self.config_file = os.path.join(self.dir, "config.py")
        with open(self.config_file, "w") as f:
            f.write(
                TRAIN_NET_CONFIG.format(
                    train_py=os.path.join(ROOT, "configs", "common", "train.py"),
                    output_dir=os.path.join(self.dir, "output"),
                )
            )

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def parse(self, *opts):
        parser = train_net.default_argument_parser()
        return parser.parse_args(["--config-file", self.config_file, *opts])

    def test_unknown_override_keys_are_named(self):
        cases = [
            ("train.max_itr=10", ["'max_itr'", "Did you mean 'max_iter'"]),
            ("model.hed.foo=1", ["'hed'", "build_detector", "Did you mean 'head'"]),
            ("train.checkpointer.perod=3", ["'perod'", "'period'"]),
            ("model.head.out_featurs=3", ["'out_featurs'", "Linear", "'out_features'"]),
            ("train.max_iter.x=1", ["'train.max_iter' is a value of type int, not a config"]),
        ]
        for override, expected in cases:
            with self.subTest(override=override):
                with self.assertRaises(KeyError) as ctx:
                    train_net.setup(self.parse(override))
                self.assertIsInstance(ctx.exception, ConfigOverrideError)
                message = str(ctx.exception)
                self.assertIn(override, message)
                for text in expected:
                    self.assertIn(text, message)

    def test_flag_after_overrides(self):
        # argparse hands everything after the first override to `opts`, flags included.
        with self.assertRaisesRegex(ValueError, "'--resume' is not a key=value config override"):
            train_net.setup(self.parse("train.max_iter=10", "--resume"))

    def test_valid_overrides(self):
        cfg = train_net.setup(
            self.parse(
                "train.max_iter=10",
                "model.head.bias=False",  # a constructor argument the config leaves at default
                "+train.my_flag=1",  # '+' adds a key on purpose
                "train.best_checkpointer.val_metric=bbox/AP",  # fills the None placeholder
            )
        )
        self.assertEqual(cfg.train.max_iter, 10)
        self.assertFalse(cfg.model.head.bias)
        self.assertEqual(cfg.train.my_flag, 1)
        self.assertEqual(cfg.train.best_checkpointer.val_metric, "bbox/AP")
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "output", "config.yaml")))


if __name__ == "__main__":
    unittest.main()
