"""A ``DefaultTrainer`` for LazyConfig projects, and the config helpers its scripts need.

detectron2's :class:`~detectron2.engine.DefaultTrainer` reads a yacs ``CfgNode`` everywhere
(``cfg.SOLVER``, ``cfg.TEST``...), and ``tools/lazyconfig_train_net.py`` is a script, not
something to subclass (detectron2 issue #5176). :class:`Trainer` keeps DefaultTrainer's method
names and classmethod hooks, but reads a LazyConfig with these keys:

* ``model``: the model; built with ``instantiate`` and moved to ``train.device``.
* ``optimizer``: e.g. ``L(SGD)(params=L(get_default_optimizer_params)(...), lr=...)``; its
  ``params.model`` is filled with the built model (the config itself is not modified).
* ``lr_multiplier``: a fvcore ``ParamScheduler`` over training progress in [0, 1].
* ``dataloader.train`` (an iterable of batches), ``dataloader.test`` (an iterable with a length)
  and ``dataloader.evaluator`` (a ``DatasetEvaluator`` or a list of them).
* ``train``: ``output_dir``, ``init_checkpoint``, ``max_iter``, ``amp.enabled``, ``ddp`` (kwargs of
  ``create_ddp_model``), ``checkpointer`` (``period``, ``max_to_keep``), ``eval_period``,
  ``log_period``, ``device``, ``metrics_window`` (median window of the logged losses, default 20;
  1 logs raw per-iteration values) and, optionally, ``best_checkpointer`` (kwargs of
  :class:`~detectron2.engine.hooks.BestCheckpointer`, e.g. ``dict(val_metric="bbox/AP")``).

Differences from v0.6's DefaultTrainer that matter: checkpoints include the inner trainer's state
(optimizer, AMP grad scaler), which v0.6 forgets (fixed upstream after v0.6); ``train.amp`` also
works on a CPU (bfloat16 autocast where the CPU runs bf16 natively, else float32 with a
warning); loading goes through :class:`ddod.engine.DetectionCheckpointer`, whose errors name the
file and never leave a half-loaded model. The datasets a config records (``coco_json_datasets``)
are registered, and the model's and the datasets' classes checked, before anything is built.

Exact resume: with a loader that can be repositioned (``ddod.data.build_resumable_train_loader``,
the default in ``configs/common/data``), ``resume_or_load(resume=True)`` restarts the data stream
at the batch of the first iteration after the checkpoint and restores the stream's seed, and the
recent history of the logged scalars is checkpointed too, so that the (median-smoothed) values in
``metrics.json`` after a resume are those of an uninterrupted run. A non-finite loss stops
training with a ``FloatingPointError`` that names the loss, before the optimizer step.

:func:`apply_overrides` is ``LazyConfig.apply_overrides`` with a check that every overridden key
exists (v0.6 silently adds misspelt keys such as ``train.max_itr``).
"""

import difflib
import inspect
import json
import logging
import math
import os
import time
import weakref
from collections.abc import Mapping
from typing import List, Optional, Sequence

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import create_ddp_model as _d2_create_ddp_model
from detectron2.evaluation import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_on_dataset,
    print_csv_format,
)
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger
from detectron2.utils.registry import locate

from ..data.coco_json import check_dataset_classes, register_config_datasets
from ..utils import cpu as cpu_precision
from .checkpoint import DetectionCheckpointer
from .setup import PROJECT_LOGGERS, write_model_summary

__all__ = [
    "Trainer",
    "CPUAutocastTrainer",
    "ConfigOverrideError",
    "apply_overrides",
    "check_losses_finite",
]

logger = logging.getLogger(__name__)

_REQUIRED = object()


def _select(cfg, key: str, default=_REQUIRED):
    """``cfg.<key>`` for a dotted key; a clear error when a required key is missing."""
    value = OmegaConf.select(cfg, key, default=_REQUIRED)
    if value is _REQUIRED:
        if default is _REQUIRED:
            raise KeyError(f"The config has no '{key}'; the Trainer needs it.")
        return default
    return value


def _resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"train.device={name!r}, but CUDA is not available on this machine. "
            "Run with train.device=cpu."
        )
    return device


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _setup_loggers_if_needed() -> None:
    """Make the INFO logs of detectron2, fvcore and ddod visible when no script set them up.

    ``default_setup`` sets up "detectron2" and "fvcore" (and our ``train_net.py`` also "ddod");
    a Trainer used from a notebook or a test would otherwise hide the checkpoint-loading report.
    """
    for name in PROJECT_LOGGERS:
        if not logging.getLogger(name).isEnabledFor(logging.INFO):
            setup_logger(distributed_rank=comm.get_rank(), name=name)


def check_losses_finite(loss_dict, iteration: int) -> None:
    """Raise ``FloatingPointError`` naming every non-finite loss in ``loss_dict``.

    detectron2 raises the same error type (on the main process, from the averaged losses) with
    the whole loss dict; this names the culprits first, on the process where they appear.
    """
    values = {k: float(v.detach().float().sum()) for k, v in loss_dict.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if not bad:
        return
    everything = ", ".join(f"{k}={v:.6g}" for k, v in values.items())
    raise FloatingPointError(
        f"Loss became infinite or NaN at iteration={iteration}: "
        + ", ".join(f"{k}={values[k]}" for k in bad)
        + f" (process {comm.get_rank()}; all losses: {everything}). Training stopped before the "
        "optimizer step, so no weight was updated from it. Common causes: a learning rate too "
        "high for the batch size (lower optimizer.lr or lengthen the warm-up) or broken "
        "annotations. Continue from the last checkpoint with --resume once fixed."
    )


class _StopOnNonFiniteLoss:
    """Mixin for detectron2's inner trainers: check the losses of every process before the step."""

    def _write_metrics(self, loss_dict, data_time, *args, **kwargs):
        check_losses_finite(loss_dict, self.iter)
        super()._write_metrics(loss_dict, data_time, *args, **kwargs)


class _SimpleTrainer(_StopOnNonFiniteLoss, SimpleTrainer):
    """detectron2's SimpleTrainer; a non-finite loss raises naming it (see check_losses_finite)."""


class _AMPTrainer(_StopOnNonFiniteLoss, AMPTrainer):
    """detectron2's AMPTrainer; a non-finite loss raises naming it (see check_losses_finite)."""


class CPUAutocastTrainer(_StopOnNonFiniteLoss, SimpleTrainer):
    """:class:`SimpleTrainer` whose forward pass runs under CPU autocast (bfloat16 by default).

    detectron2's :class:`AMPTrainer` asserts CUDA. On a CPU, mixed precision means bfloat16
    autocast, which has the float32 exponent range and so needs no gradient scaler: the backward
    pass and the optimizer step are the ordinary ones, and the state_dict is SimpleTrainer's.
    """

    def __init__(self, model, data_loader, optimizer, dtype: torch.dtype = torch.bfloat16):
        """
        Args:
            model, data_loader, optimizer: same as in :class:`SimpleTrainer`.
            dtype: the autocast dtype (``torch.bfloat16`` or ``torch.float16``).
        """
        super().__init__(model, data_loader, optimizer)
        self.dtype = dtype

    def run_step(self):
        assert self.model.training, "[CPUAutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        with torch.autocast("cpu", dtype=self.dtype):
            loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        # Sum in float32: adding several bfloat16 losses would round away small terms.
        losses = sum(loss.float() for loss in loss_dict.values())

        self.optimizer.zero_grad()
        losses.backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


class Trainer(TrainerBase):
    """DefaultTrainer for LazyConfigs: builds everything from ``cfg`` and runs the standard hooks.

    Each piece comes from an overridable classmethod (``build_model``, ``build_optimizer``,
    ``build_lr_scheduler``, ``build_train_loader``, ``build_test_loader``, ``build_evaluator``,
    ``build_train_loop``), so a project customises one of them by subclassing, as with
    DefaultTrainer. See the module docstring for the config keys read.

    Examples:
    ::
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)  # last checkpoint or train.init_checkpoint
        trainer.train()

    Attributes:
        cfg: the LazyConfig.
        scheduler: the fvcore ParamScheduler of the LR multiplier.
        checkpointer (DetectionCheckpointer): saves model, trainer state (iteration, hook states,
            optimizer, grad scaler) to ``train.output_dir``.
    """

    def __init__(self, cfg):
        """
        Args:
            cfg: a LazyConfig (omegaconf DictConfig) with the keys listed in the module docstring.
        """
        super().__init__()
        _setup_loggers_if_needed()
        # Datasets recorded in the config (train_net.py --train-json ...), then the class check:
        # a model/dataset class mismatch fails here, not after training, at evaluation time.
        register_config_datasets(cfg)
        check_dataset_classes(cfg)

        # Same order as DefaultTrainer: the optimizer needs the (unwrapped) model's parameters.
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)

        model = self.create_ddp_model(cfg, model)
        self._trainer = self.build_train_loop(cfg, model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg)
        output_dir = _select(cfg, "train.output_dir")
        self.checkpointer = DetectionCheckpointer(
            # The proxy avoids a reference cycle trainer -> checkpointer -> trainer.
            model,
            output_dir,
            trainer=weakref.proxy(self),
        )
        self.start_iter = 0
        self.max_iter = int(_select(cfg, "train.max_iter"))
        self.cfg = cfg

        self.register_hooks(self.build_hooks())

    # ---------------------------------------------------------------------------------------
    # Forwarded attributes of the inner training loop (hooks read these)
    # ---------------------------------------------------------------------------------------
    @property
    def model(self):
        return self._trainer.model

    @model.setter
    def model(self, value):
        self._trainer.model = value

    @property
    def data_loader(self):
        return self._trainer.data_loader

    @data_loader.setter
    def data_loader(self, value):
        self._trainer.data_loader = value

    @property
    def optimizer(self):
        return self._trainer.optimizer

    @optimizer.setter
    def optimizer(self, value):
        self._trainer.optimizer = value

    # ---------------------------------------------------------------------------------------
    # Running
    # ---------------------------------------------------------------------------------------
    def resume_or_load(self, resume: bool = True):
        """Resume from the last checkpoint in ``train.output_dir``, or load the init weights.

        With ``resume=True`` and a ``last_checkpoint`` file in ``train.output_dir``, everything is
        restored: model (with its buffers), iteration, hook states, optimizer and grad scaler,
        and training continues at the next iteration. Otherwise only the model weights are
        loaded from ``train.init_checkpoint`` ("" for none) and training starts at 0.

        Raises:
            ddod.engine.CheckpointError: the file is missing, unreadable or does not fit.
        """
        init_checkpoint = _select(self.cfg, "train.init_checkpoint", default="")
        self.checkpointer.resume_or_load(init_checkpoint, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            # The checkpoint stores the iteration that just finished.
            self.start_iter = self.iter + 1
            self._report_resume()
        self._position_data_loader(self.start_iter)

    def _report_resume(self) -> None:
        """Say what a resume will do when it is not simply "continue where it stopped"."""
        output_dir = _select(self.cfg, "train.output_dir")
        saved_max_iter = getattr(self, "_checkpoint_max_iter", None)
        if saved_max_iter is not None and saved_max_iter != self.max_iter:
            logger.warning(
                f"Resuming a run of train.max_iter={saved_max_iter} with train.max_iter="
                f"{self.max_iter}: the learning-rate schedule is a function of iter / max_iter, "
                f"so from iteration {self.start_iter} on it follows the new length (warm-up and "
                "decay steps move); the run will not match one trained with either length from "
                "the start."
            )
        if self.start_iter >= self.max_iter:
            logger.warning(
                f"The run in '{output_dir}' already finished: its last checkpoint is at iteration "
                f"{self.start_iter - 1} and train.max_iter={self.max_iter}. Nothing to train; the "
                "final evaluation runs again. Raise train.max_iter to train longer, or use "
                "--eval-only to evaluate."
            )

    def _position_data_loader(self, start_iter: int) -> None:
        """Make the next batch the one of iteration ``start_iter``, if the loader allows it."""
        loader = self.data_loader
        if not hasattr(loader, "set_start_iter"):
            if start_iter > 0:
                logger.warning(
                    f"The training loader ({type(loader).__name__}) cannot be repositioned: after "
                    f"resuming at iteration {start_iter} it restarts its sample stream, so the "
                    "images differ from those of an uninterrupted run. Build it with "
                    "ddod.data.build_resumable_train_loader for an exact resume."
                )
            return
        loader.set_start_iter(start_iter)
        # SimpleTrainer (v0.6) called iter(loader) when it was built; start a new iterator from
        # the new position. (Later detectron2 versions create it lazily from this attribute.)
        if hasattr(self._trainer, "_data_loader_iter_obj"):
            self._trainer._data_loader_iter_obj = None
        else:
            self._trainer._data_loader_iter = iter(loader)

    def train(self):
        """Run training from ``start_iter`` to ``train.max_iter``.

        Returns:
            the results of the last evaluation (a nested dict of floats), or None if no
            evaluation ran.
        """
        super().train(self.start_iter, self.max_iter)
        return getattr(self, "_last_eval_results", None)

    def run_step(self):
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def before_train(self):
        history = getattr(self, "_restored_metrics_history", None)
        if history:
            # Refill the smoothing windows of the logged scalars, so that metrics.json and the
            # console show, after a resume, the medians an uninterrupted run shows.
            histories = self.storage.histories()
            for name, values in history.items():
                for value, iteration in values:
                    histories[name].update(float(value), float(iteration))
            self._restored_metrics_history = None
        super().before_train()

    def state_dict(self):
        ret = super().state_dict()
        ret["max_iter"] = self.max_iter  # lets a resume notice a changed schedule length
        # v0.6's DefaultTrainer omits this, so a resumed run restarted SGD momentum from zero.
        ret["_trainer"] = self._trainer.state_dict()
        if hasattr(self.data_loader, "state_dict"):
            ret["data_loader"] = self.data_loader.state_dict()
        storage = getattr(self, "storage", None)
        if storage is not None:
            keep = max(self._metrics_window(), 20)
            ret["metrics_history"] = {
                name: [[float(v), float(i)] for v, i in buffer.values()[-keep:]]
                for name, buffer in storage.histories().items()
            }
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._checkpoint_max_iter = state_dict.get("max_iter")
        self._restored_metrics_history = state_dict.get("metrics_history")
        loader_state = state_dict.get("data_loader")
        if loader_state is not None and hasattr(self.data_loader, "load_state_dict"):
            self.data_loader.load_state_dict(loader_state)
        inner = state_dict.get("_trainer")
        if inner is None:
            logger.warning(
                "The checkpoint has no '_trainer' state (written by detectron2 v0.6's "
                "DefaultTrainer?): the optimizer state is not restored."
            )
            return
        if isinstance(self._trainer, AMPTrainer) and "grad_scaler" not in inner:
            logger.warning(
                "The checkpoint was not written with AMP: the grad scaler starts afresh."
            )
            SimpleTrainer.load_state_dict(self._trainer, inner)
            return
        self._trainer.load_state_dict(inner)

    # ---------------------------------------------------------------------------------------
    # Hooks and writers
    # ---------------------------------------------------------------------------------------
    def build_hooks(self) -> List[hooks.HookBase]:
        """The default hooks, in the order DefaultTrainer uses.

        IterationTimer, LRScheduler, PeriodicCheckpointer (main process), EvalHook (all ranks,
        after the checkpointer so a crash in evaluation leaves a checkpoint behind; period 0
        means "only at the end"), BestCheckpointer (if ``train.best_checkpointer`` is set; main
        process), and PeriodicWriter last (main process) so evaluation metrics get written.
        """
        cfg = self.cfg
        eval_period = int(_select(cfg, "train.eval_period", default=0))
        ret = [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=self.scheduler),
        ]
        if comm.is_main_process():
            checkpointer_kwargs = dict(_select(cfg, "train.checkpointer", default={}) or {})
            checkpointer_kwargs.setdefault("period", self.max_iter)
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, **checkpointer_kwargs))

        def test_and_save_results():
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        ret.append(hooks.EvalHook(eval_period, test_and_save_results))

        best = _select(cfg, "train.best_checkpointer", default=None)
        if best and comm.is_main_process():
            ret.append(hooks.BestCheckpointer(eval_period, self._best_model_checkpointer(), **best))
        if comm.is_main_process():
            log_period = int(_select(cfg, "train.log_period", default=20))
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=log_period))
        return ret

    def _best_model_checkpointer(self) -> DetectionCheckpointer:
        # BestCheckpointer saves through `checkpointer.save`, which would also point
        # `last_checkpoint` at model_best.pth, so `--resume` could jump back to an older
        # iteration. A second checkpointer writes the same content without moving that tag.
        return DetectionCheckpointer(
            self.checkpointer.model,
            self.checkpointer.save_dir,
            update_last_checkpoint=False,
            trainer=weakref.proxy(self),
        )

    def _metrics_window(self) -> int:
        window = int(_select(self.cfg, "train.metrics_window", default=20))
        if window < 1:
            raise ValueError(f"train.metrics_window must be >= 1, got {window}.")
        return window

    def build_writers(self):
        """CommonMetricPrinter (with ETA), JSONWriter (metrics.json) and TensorboardXWriter.

        Losses are median-smoothed over ``train.metrics_window`` iterations (default 20, as in
        detectron2) in the first two; 1 writes the raw value of every iteration.

        The TensorBoard writer is skipped, with a warning, when ``tensorboard`` is not installed.
        """
        output_dir = _select(self.cfg, "train.output_dir")
        PathManager.mkdirs(output_dir)
        window = self._metrics_window()
        writers = [
            CommonMetricPrinter(self.max_iter, window_size=window),
            JSONWriter(os.path.join(output_dir, "metrics.json"), window_size=window),
        ]
        try:
            writers.append(TensorboardXWriter(output_dir))
        except ImportError as e:
            logger.warning(f"Not writing TensorBoard events ({e}); pip install tensorboard.")
        return writers

    # ---------------------------------------------------------------------------------------
    # Builders: override one of these to customise a piece
    # ---------------------------------------------------------------------------------------
    @classmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        """Instantiate ``cfg.model`` and move it to ``cfg.train.device``.

        Moving the whole module also moves buffers such as ``pixel_mean``, from which
        detectron2's meta-architectures take the device they move each input batch to.
        """
        model = instantiate(cfg.model)
        default_device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(_resolve_device(_select(cfg, "train.device", default=default_device)))
        logger.info("Model: " + write_model_summary(model, _select(cfg, "train.output_dir", None)))
        return model

    @classmethod
    def build_optimizer(cls, cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
        """Instantiate ``cfg.optimizer`` with ``params.model`` set to ``model``.

        ``cfg`` is left unchanged, so it stays serialisable (no module object inside).
        """
        optimizer_cfg = {k: cfg.optimizer[k] for k in cfg.optimizer}
        params = optimizer_cfg.get("params")
        if isinstance(params, Mapping):
            params = {k: params[k] for k in params}
            params["model"] = model
            optimizer_cfg["params"] = params
        return instantiate(optimizer_cfg)

    @classmethod
    def build_lr_scheduler(cls, cfg):
        """Instantiate ``cfg.lr_multiplier``: a fvcore ParamScheduler over progress in [0, 1]."""
        return instantiate(cfg.lr_multiplier)

    @classmethod
    def build_train_loader(cls, cfg):
        """Instantiate ``cfg.dataloader.train``: an iterable yielding training batches."""
        return instantiate(cfg.dataloader.train)

    @classmethod
    def build_test_loader(cls, cfg):
        """Instantiate ``cfg.dataloader.test``: an iterable with a length."""
        if OmegaConf.select(cfg, "dataloader.test") is None:
            raise NotImplementedError("The config has no 'dataloader.test': nothing to evaluate.")
        return instantiate(cfg.dataloader.test)

    @classmethod
    def build_evaluator(cls, cfg):
        """Instantiate ``cfg.dataloader.evaluator``: a DatasetEvaluator or a list of them."""
        if OmegaConf.select(cfg, "dataloader.evaluator") is None:
            raise NotImplementedError(
                "The config has no 'dataloader.evaluator'. Set one, or pass evaluators= to "
                "Trainer.test()."
            )
        evaluator_cfg = cfg.dataloader.evaluator
        output_dir = _select(cfg, "train.output_dir", default=None)
        if output_dir and _lazy_target(evaluator_cfg) is not None:
            if _child(evaluator_cfg, "output_dir") is None and _lazy_call_accepts(
                evaluator_cfg, "output_dir"
            ):
                # Keep the predictions (coco_instances_results.json) next to the run.
                evaluator_cfg = OmegaConf.merge(
                    evaluator_cfg, {"output_dir": os.path.join(output_dir, "inference")}
                )
        return instantiate(evaluator_cfg)

    @classmethod
    def build_train_loop(cls, cfg, model, data_loader, optimizer) -> SimpleTrainer:
        """The inner loop that runs one iteration: SimpleTrainer, or a mixed-precision one.

        With ``train.amp.enabled``: detectron2's :class:`AMPTrainer` (float16 + grad scaler) for
        a CUDA model, :class:`CPUAutocastTrainer` (bfloat16) for a CPU model whose CPU runs
        bfloat16 natively, else float32 with one warning (emulated bfloat16 is 100x slower or
        worse, see :mod:`ddod.utils.cpu`). All of them stop with a ``FloatingPointError`` naming
        the loss when a loss is not finite.
        """
        if not _select(cfg, "train.amp.enabled", default=False):
            return _SimpleTrainer(model, data_loader, optimizer)
        device = _model_device(model)
        if device.type == "cuda":
            return _AMPTrainer(model, data_loader, optimizer, grad_scaler=_cuda_grad_scaler())
        if device.type == "cpu":
            dtype = cpu_precision.cpu_autocast_dtype("train.amp.enabled")
            if dtype is None:  # not native here: cpu_autocast_dtype warned and said why
                return _SimpleTrainer(model, data_loader, optimizer)
            logger.info(f"train.amp.enabled on a CPU: training under {dtype} autocast.")
            return CPUAutocastTrainer(model, data_loader, optimizer, dtype=dtype)
        raise ValueError(f"train.amp.enabled=True is not supported for a model on {device}.")

    @classmethod
    def create_ddp_model(cls, cfg, model):
        """Wrap ``model`` in DistributedDataParallel (kwargs: ``cfg.train.ddp``) when there are
        several processes; return it unchanged in a single process.
        """
        kwargs = dict(_select(cfg, "train.ddp", default={}) or {})
        if comm.get_world_size() > 1 and _model_device(model).type == "cpu":
            # v0.6's create_ddp_model passes device_ids=[local_rank], which DDP rejects for a
            # CPU module (multi-process CPU training runs on GLOO, see ddod.compat).
            kwargs.setdefault("device_ids", None)
        return _d2_create_ddp_model(model, **kwargs)

    # ---------------------------------------------------------------------------------------
    # Evaluation
    # ---------------------------------------------------------------------------------------
    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate ``model`` (which already holds the weights to evaluate) on the test set.

        Args:
            cfg: the LazyConfig.
            model: the model, possibly DDP-wrapped.
            evaluators (DatasetEvaluator or list[DatasetEvaluator] or None): if None,
                :meth:`build_evaluator` is called.

        Returns:
            dict: the evaluators' results, a nested dict of floats (e.g.
            ``{"bbox": {"AP": 41.2, ...}}``); ``{}`` when there is nothing to evaluate and on
            non-main processes whose evaluators return nothing.
        """
        register_config_datasets(cfg)
        check_dataset_classes(cfg)
        try:
            if evaluators is None:
                evaluators = cls.build_evaluator(cfg)
            data_loader = cls.build_test_loader(cfg)
        except NotImplementedError as e:
            logger.warning(f"Skipping evaluation: {e}")
            return {}
        if isinstance(evaluators, (list, tuple, ListConfig)):
            evaluators = DatasetEvaluators(list(evaluators))
        if not isinstance(evaluators, DatasetEvaluator):
            raise TypeError(
                "dataloader.evaluator must build a DatasetEvaluator or a list of them, got "
                f"{type(evaluators).__name__}."
            )

        aug = OmegaConf.select(cfg, "test.aug")
        if aug is not None and aug.get("enabled", False):
            # test-time augmentation (modeling/test_time_augmentation.py), as TEST.AUG in d2
            from ..modeling.test_time_augmentation import DenseDetectorWithTTA

            model = DenseDetectorWithTTA.from_config(model, aug)
            logger.info(f"Evaluating with test-time augmentation: {model.extra_repr()}.")
        results = inference_on_dataset(model, data_loader, evaluators) or {}
        if comm.is_main_process():
            assert isinstance(
                results, Mapping
            ), f"Evaluators must return a dict on the main process, got {results!r}."
            logger.info("Evaluation results in csv format:")
            print_csv_format(results)
            _write_eval_results(cfg, results)
        return results


def _write_eval_results(cfg, results) -> None:
    """Save an evaluation's metrics to ``train.output_dir/inference/eval_results.json``."""
    output_dir = _select(cfg, "train.output_dir", default=None)
    if not output_dir or not results:
        return
    path = os.path.join(output_dir, "inference", "eval_results.json")
    PathManager.mkdirs(os.path.dirname(path))
    with PathManager.open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)
    logger.info(f"Evaluation metrics written to {path}.")


def _cuda_grad_scaler():
    # torch>=2.3 deprecates torch.cuda.amp.GradScaler (AMPTrainer's default) for this spelling;
    # the state_dict is the same either way.
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


# -------------------------------------------------------------------------------------------
# Command-line overrides
# -------------------------------------------------------------------------------------------
class ConfigOverrideError(KeyError):
    """A ``key=value`` override names a key that the config does not have."""

    def __str__(self):  # KeyError's str() would quote the message
        return str(self.args[0]) if self.args else ""


def apply_overrides(cfg, overrides: Optional[Sequence[str]]):
    """Like ``LazyConfig.apply_overrides``, but an override of a key that does not exist fails.

    v0.6 creates missing keys silently, so ``train.max_itr=10`` trains for the default number of
    iterations. Here every key must already exist, with one exception: a new argument of a
    LazyCall (a node with ``_target_``) is accepted when the target's signature takes it (for
    example ``model.head.norm=GN`` when the config relies on the default ``norm``). To add any
    other key on purpose, prefix it with ``+`` (hydra's syntax): ``+train.my_flag=1``.

    Raises:
        ConfigOverrideError (a KeyError): naming the key, with close matches.
    """
    # every config has the ``test.aug`` keys (test-time augmentation), with their defaults
    from ..modeling.test_time_augmentation import add_test_defaults

    cfg = add_test_defaults(cfg)
    overrides = list(overrides or [])
    if not overrides:
        return cfg
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        # argparse puts everything after the first key=value into the overrides.
        raise ValueError(
            f"{flags[0]!r} is not a key=value config override. Command-line flags must come "
            "before the overrides: train_net.py --config-file X --resume train.max_iter=10"
        )
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    for text, override in zip(overrides, parsed):
        if not override.is_add():
            _check_key_exists(cfg, override.key_or_group, text)
    return LazyConfig.apply_overrides(cfg, overrides)


def _child(node, key):
    """``node[key]`` (a sub-config or a resolved value); None when it cannot be resolved."""
    try:
        return node[key]
    except Exception:  # e.g. a mandatory "???" value or an interpolation that does not resolve
        return None


def _check_key_exists(cfg, key: str, override: str) -> None:
    parts = key.split(".")
    node = cfg
    for depth, part in enumerate(parts):
        parent = ".".join(parts[:depth]) or "the config"
        if isinstance(node, DictConfig):
            if part in node:
                node = _child(node, part)
                continue
            is_last = depth == len(parts) - 1
            if is_last and _lazy_call_accepts(node, part):
                return
            raise ConfigOverrideError(_unknown_key_message(override, parent, part, node, is_last))
        if isinstance(node, ListConfig):
            if part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                node = _child(node, int(part))
                continue
            raise ConfigOverrideError(
                f"Config override '{override}': '{parent}' is a list of {len(node)} items, "
                f"'{part}' is not a valid index."
            )
        if node is None:
            return  # e.g. `train.best_checkpointer.val_metric=...` fills a None placeholder
        raise ConfigOverrideError(
            f"Config override '{override}': '{parent}' is a value of type {type(node).__name__}, "
            f"not a config, so it has no key '{part}'."
        )


def _lazy_target(node: DictConfig):
    if "_target_" not in node:
        return None
    target = _child(node, "_target_")
    if isinstance(target, str):
        try:
            target = locate(target)
        except Exception:
            return None
    return target


def _lazy_call_accepts(node: DictConfig, name: str) -> bool:
    """True if ``node`` is a LazyCall whose target takes a keyword argument ``name``.

    When the signature cannot be read (some builtins), the override is given the benefit of the
    doubt; instantiate() will report a wrong name.
    """
    target = _lazy_target(node)
    if target is None:
        return False
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.name == name
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        or p.kind == inspect.Parameter.VAR_KEYWORD
        for p in parameters
    )


def _unknown_key_message(override: str, parent: str, part: str, node, is_last: bool) -> str:
    keys = [str(k) for k in node.keys() if k != "_target_"]
    target = _lazy_target(node)
    candidates = list(keys)
    if target is not None:
        try:
            candidates += [p for p in inspect.signature(target).parameters if p not in keys]
        except (TypeError, ValueError):
            pass
    message = f"Config override '{override}': '{parent}' has no key '{part}'"
    if target is not None:
        name = getattr(target, "__qualname__", str(target))
        message += f" and its target {name} takes no argument '{part}'"
    message += "."
    close = difflib.get_close_matches(part, candidates, n=3, cutoff=0.6)
    if close:
        message += " Did you mean {}?".format(" or ".join(f"'{c}'" for c in close))
    if keys:
        message += f" Keys under '{parent}': {', '.join(sorted(keys))}."
    if is_last:
        message += " To add a new key on purpose, write '+{}'.".format(override.lstrip("+"))
    return message
