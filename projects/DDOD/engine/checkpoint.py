"""A :class:`DetectionCheckpointer` that fails loudly and never leaves a model half-loaded.

detectron2 v0.6's checkpointer (through fvcore) has three weak spots on today's stack:

* a missing file surfaces as ``AssertionError: Checkpoint ... not found!`` (or, for a URL, as
  whatever the download raised), and a truncated or corrupt file as a bare pickle/zip error that
  does not say which file was being read;
* with torch >= 2.6, ``torch.load`` defaults to ``weights_only=True``; a ``.pth`` holding numpy
  arrays or other Python objects then fails with a long ``UnpicklingError`` (detectron2 issue
  #5456, still open upstream);
* the model weights are applied before the trainer/optimizer state, so a checkpoint whose trainer
  state does not fit leaves a model with new weights and an old optimizer;
* a checkpoint is written in place, so a job killed while writing it leaves a truncated
  ``model_*.pth`` (and, if killed while ``last_checkpoint`` is rewritten, an empty tag file).

:class:`DetectionCheckpointer` here is a drop-in subclass of detectron2's: it reads the whole file
and checks its structure before touching the model, raises :class:`CheckpointError` naming the
file and the problem, restores the previous weights if applying the checkpoint fails half-way, and
logs a report of what did not match (counts, then the keys) next to detectron2's per-key
warnings. A checkpoint that matches none of the model's tensors, and a resume (loading the trainer
state too) from a checkpoint that does not match the model exactly, raise
:class:`CheckpointMismatchError` with that report. Files are written to a temporary name and
renamed into place, so a checkpoint file and ``last_checkpoint`` are always complete.
"""

import glob
import inspect
import logging
import os
import pickle
from collections.abc import Mapping
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from detectron2.checkpoint import DetectionCheckpointer as _D2DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from fvcore.common.checkpoint import _strip_prefix_if_present

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "DetectionCheckpointer",
]

# Set to "0" to let ``torch.load`` unpickle arbitrary Python objects in ``.pth`` files. Only do
# this for files you trust: unpickling can run code.
WEIGHTS_ONLY_ENV = "DDOD_CHECKPOINT_WEIGHTS_ONLY"

_TORCH_LOAD_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read or applied. The message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a :class:`FileNotFoundError`)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's weights do not fit the model. The message lists what did not match; the
    model keeps the weights it had before loading."""


# At most this many key groups are listed per category in a mismatch report.
_REPORT_GROUPS = 12


def _group_keys(keys: List[str]) -> List[str]:
    """'a.b.weight', 'a.b.bias' -> ['a.b.{bias, weight}'] (sorted)."""
    groups: Dict[str, List[str]] = {}
    for key in keys:
        head, _, tail = key.rpartition(".")
        groups.setdefault(head or tail, []).append(tail if head else "")
    out = []
    for head, tails in sorted(groups.items()):
        tails = sorted(t for t in tails if t)
        if not tails:
            out.append(head)
        elif len(tails) == 1:
            out.append(f"{head}.{tails[0]}")
        else:
            out.append(f"{head}.{{{', '.join(tails)}}}")
    return out


def _listing(items: List[str]) -> str:
    shown = items[:_REPORT_GROUPS]
    text = "".join(f"\n    {item}" for item in shown)
    if len(items) > len(shown):
        text += f"\n    ... and {len(items) - len(shown)} more"
    return text


def _atomic_write(path: str, write) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it into place.

    A reader (or a resume after the writer was killed) sees the old file or the complete new
    one, never a partial one.
    """
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise
    # Leftovers of writers that were killed (SIGKILL leaves no chance to clean up).
    for stale in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(name)}.tmp-*")):
        try:
            os.remove(stale)
        except OSError:
            pass


def _weights_only_default() -> bool:
    value = os.environ.get(WEIGHTS_ONLY_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def _is_weights_only_refusal(error: Exception) -> bool:
    """True if ``error`` is torch refusing a pickle global under ``weights_only=True``."""
    return isinstance(error, pickle.UnpicklingError) and "weights only" in str(error).lower()


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


class DetectionCheckpointer(_D2DetectionCheckpointer):
    """Same as :class:`detectron2.checkpoint.DetectionCheckpointer`, with clear load errors.

    Loading happens in two phases: first the file is read completely and its structure checked
    (``model`` must map names to tensors or arrays); only then are the model weights and the other
    checkpointables (e.g. ``trainer``) applied. Errors in the first phase raise
    :class:`CheckpointError` with the model untouched; errors in the second phase restore the
    model's previous weights before raising.

    ``.pth`` files are read with ``torch.load(weights_only=True)``, which accepts everything this
    project writes (tensors, numbers, strings, lists and dicts). Third-party files that pickle
    other objects are refused with an explanation; pass ``weights_only=False`` (or set the
    environment variable ``DDOD_CHECKPOINT_WEIGHTS_ONLY=0``) to load such a file you trust.
    ``.pkl`` files (detectron2 / Detectron model zoo format) load as in detectron2.
    """

    def __init__(
        self,
        model,
        save_dir: str = "",
        *,
        save_to_disk: Optional[bool] = None,
        weights_only: Optional[bool] = None,
        update_last_checkpoint: bool = True,
        **checkpointables: Any,
    ):
        """
        Args:
            model, save_dir, save_to_disk, checkpointables: as in detectron2's
                :class:`~detectron2.checkpoint.DetectionCheckpointer`.
            weights_only: how ``.pth`` files are unpickled. ``None`` reads the environment
                variable ``DDOD_CHECKPOINT_WEIGHTS_ONLY`` (default: True).
            update_last_checkpoint: whether :meth:`save` points ``save_dir/last_checkpoint`` (the
                file ``resume`` follows) at the new file. False for side copies such as the
                best model, which must not become the point a resume restarts from.
        """
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.weights_only = _weights_only_default() if weights_only is None else weights_only
        self.update_last_checkpoint = update_last_checkpoint
        # fvcore logs under "fvcore.common.checkpoint"; log under our package instead so the
        # missing/unexpected-key report shows up wherever the `ddod` logger is set up.
        self.logger = logging.getLogger(__name__)
        self._loading_path = ""
        self._strict = False
        self._num_applied = 0

    # ---------------------------------------------------------------------------------------
    # Public API (same signatures as fvcore's Checkpointer)
    # ---------------------------------------------------------------------------------------
    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        """Load ``path`` into the model and the named checkpointables (all when ``None``).

        An empty ``path`` means "no checkpoint": nothing is loaded and ``{}`` is returned.

        Raises:
            CheckpointNotFoundError: ``path`` does not exist.
            CheckpointError: the file cannot be read, is not a model checkpoint, or applying it
                failed (the model keeps its previous weights in every case).
        """
        if not path:
            return super().load(path, checkpointables=checkpointables)
        # Every rank reads the file itself. (detectron2's DDP branch in `load`, meant for files
        # only the main worker can see, never runs: fvcore unwraps DDP models in __init__.)
        path = self._find_local_file(path)

        backup = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self._loading_path = path
        # Loading the trainer state too means resuming: only the exact model will do.
        self._strict = bool(self.checkpointables) and (
            checkpointables is None or bool(checkpointables)
        )
        try:
            return super().load(path, checkpointables=checkpointables)
        except CheckpointMismatchError:
            self.model.load_state_dict(backup)
            raise
        except CheckpointError:
            raise  # raised while reading the file: nothing was applied
        except Exception as e:
            self.model.load_state_dict(backup)
            if isinstance(e, OSError):
                raise
            raise CheckpointError(
                f"Failed to apply checkpoint '{path}' ({type(e).__name__}: {_first_line(str(e))})."
                " The model's weights were restored to what they were before loading."
            ) from e
        finally:
            self._loading_path = ""
            self._strict = False

    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``save_dir/<name>.pth`` (and update ``last_checkpoint``) atomically.

        Same content as detectron2's; on a local directory the file is written under a temporary
        name and renamed, so a job killed mid-write leaves the previous checkpoint intact and
        ``last_checkpoint`` pointing at it. Other storage backends are written as detectron2 does.
        """
        if not self.save_dir or not self.save_to_disk:
            return
        if not os.path.isdir(self.save_dir):
            return super().save(name, **kwargs)
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        assert os.path.basename(save_file) == basename, basename
        self.logger.info(f"Saving checkpoint to {save_file}")
        _atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """Resume from ``save_dir/last_checkpoint`` if asked and present, else load ``path``.

        Same as fvcore's, but a ``last_checkpoint`` that names a missing file is an error that
        says so, instead of silently falling back or failing on the wrong path.
        """
        if resume and self.has_checkpoint():
            last = self.get_checkpoint_file()
            if not self.path_manager.isfile(last):
                tag = os.path.join(self.save_dir, "last_checkpoint")
                raise CheckpointNotFoundError(
                    f"Cannot resume: '{tag}' names '{last}', which does not exist. Point "
                    "'last_checkpoint' at an existing checkpoint, or delete it to start from "
                    "train.init_checkpoint."
                )
            return self.load(last)
        return self.load(path, checkpointables=[])

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not self.update_last_checkpoint:
            return
        if not os.path.isdir(self.save_dir):
            return super().tag_last_checkpoint(last_filename_basename)
        _atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename.encode()),
        )

    # ---------------------------------------------------------------------------------------
    # Reading (phase 1): nothing here touches the model
    # ---------------------------------------------------------------------------------------
    def _find_local_file(self, path: str) -> str:
        if os.path.isfile(path):
            return path
        try:
            local = self.path_manager.get_local_path(path)
        except Exception as e:
            raise CheckpointNotFoundError(
                f"Cannot fetch checkpoint '{path}' ({type(e).__name__}: {_first_line(str(e))})."
            ) from e
        if not os.path.isfile(local):
            resolved = f" (resolved to '{local}')" if local != path else ""
            raise CheckpointNotFoundError(
                f"Checkpoint file '{path}'{resolved} does not exist. Check the path given in "
                "train.init_checkpoint (use '' to start from scratch)."
            )
        return local

    def _load_file(self, filename: str) -> Dict[str, Any]:
        size = os.path.getsize(filename)
        if size == 0:
            raise CheckpointError(f"Checkpoint file '{filename}' is empty (0 bytes).")
        try:
            if filename.endswith((".pkl", ".pyth")):
                # detectron2 / Caffe2 / pycls formats: detectron2 knows how to read them.
                loaded = super()._load_file(filename)
            else:
                loaded = self._torch_load(filename)
                if isinstance(loaded, Mapping) and "model" not in loaded:
                    loaded = {"model": loaded}  # a bare state_dict, as DetectionCheckpointer
        except CheckpointError:
            raise
        except Exception as e:
            raise self._read_error(filename, size, e) from e
        self._check_structure(filename, loaded)
        return loaded

    def _torch_load(self, filename: str) -> Any:
        kwargs = {"map_location": torch.device("cpu")}
        if _TORCH_LOAD_HAS_WEIGHTS_ONLY:
            kwargs["weights_only"] = self.weights_only
        with self.path_manager.open(filename, "rb") as f:
            return torch.load(f, **kwargs)

    def _read_error(self, filename: str, size: int, error: Exception) -> CheckpointError:
        if _is_weights_only_refusal(error):
            return CheckpointError(
                f"Cannot load checkpoint '{filename}': it pickles Python objects other than "
                "tensors and plain containers, which torch.load(weights_only=True) refuses (the "
                "default since torch 2.6). If you trust this file, load it with "
                f"{WEIGHTS_ONLY_ENV}=0 in the environment (or weights_only=False), or convert it "
                f"to a tensors-only .pth or a detectron2 .pkl. torch said: "
                f"{_first_line(str(error))}"
            )
        return CheckpointError(
            f"Cannot read checkpoint '{filename}' ({size} bytes): the file is truncated or "
            f"corrupt ({type(error).__name__}: {_first_line(str(error))}). If a job was killed "
            "while writing it, delete it and resume from an earlier checkpoint (update "
            "'last_checkpoint' in the output directory)."
        )

    @staticmethod
    def _check_structure(filename: str, loaded: Any) -> None:
        if not isinstance(loaded, Mapping):
            raise CheckpointError(
                f"Checkpoint '{filename}' holds a {type(loaded).__name__}, not a dict: it is not "
                "a model checkpoint."
            )
        weights = loaded.get("model")
        if not isinstance(weights, Mapping):
            raise CheckpointError(
                f"Checkpoint '{filename}' has a 'model' entry of type {type(weights).__name__}; "
                "expected a dict of tensors (a state_dict)."
            )
        if len(weights) == 0:
            raise CheckpointError(f"Checkpoint '{filename}' contains no model weights.")
        for key, value in weights.items():
            if not isinstance(value, (torch.Tensor, np.ndarray)):
                raise CheckpointError(
                    f"Checkpoint '{filename}' is not a model checkpoint: 'model' maps '{key}' to "
                    f"a {type(value).__name__}, not a tensor or array."
                )

    # ---------------------------------------------------------------------------------------
    # Applying (phase 2): report
    # ---------------------------------------------------------------------------------------
    def mismatch_report(self, incompatible) -> str:
        """A readable account of how the last loaded checkpoint fits the model.

        Args:
            incompatible: fvcore's ``_IncompatibleKeys`` (missing_keys, unexpected_keys,
                incorrect_shapes as (key, shape in checkpoint, shape in model)).
        """
        num_model, num_loaded = self._count_loaded(incompatible)
        shapes = list(incompatible.incorrect_shapes)
        # fvcore also lists the tensors skipped for their shape as missing: report them once.
        mismatched = {key for key, _, _ in shapes}
        missing = [k for k in incompatible.missing_keys if k not in mismatched]
        unexpected = list(incompatible.unexpected_keys)
        lines = [
            "Loaded {} of {} model tensors from '{}' ({} missing, {} unexpected, {} with "
            "mismatched shapes).".format(
                num_loaded, num_model, self._loading_path, len(missing), len(unexpected),
                len(shapes),
            )
        ]  # fmt: skip
        if shapes:
            lines.append(
                "  Shapes differ (kept the model's values):"
                + _listing(
                    [
                        f"{key}: checkpoint {tuple(a)}, model {tuple(b)}"
                        for key, a, b in sorted(shapes)
                    ]
                )
            )
        if missing:
            lines.append("  In the model, not in the checkpoint:" + _listing(_group_keys(missing)))
        if unexpected:
            lines.append(
                "  In the checkpoint, not in the model:" + _listing(_group_keys(unexpected))
            )
        return "\n".join(lines)

    def _load_model(self, checkpoint):
        if checkpoint.get("matching_heuristics", False):
            # detectron2's name matching, done here (as detectron2 does it) so that the names
            # actually loaded are known.
            self._convert_ndarray_to_tensor(checkpoint["model"])
            checkpoint["model"] = align_and_update_state_dicts(
                self.model.state_dict(),
                checkpoint["model"],
                c2_conversion=checkpoint.get("__author__", None) == "Caffe2",
            )
            checkpoint["matching_heuristics"] = False
        _strip_prefix_if_present(checkpoint["model"], "module.")
        given = set(checkpoint["model"])
        incompatible = super()._load_model(checkpoint)  # pops checkpoint["model"]
        # Counted from the names given, not from missing_keys: detectron2 removes pixel_mean/std
        # from those, and BatchNorm fills a missing num_batches_tracked without reporting it.
        mismatched = {k for k, _, _ in incompatible.incorrect_shapes}
        self._num_applied = len((set(self.model.state_dict()) & given) - mismatched)
        return incompatible

    def _count_loaded(self, incompatible):
        """(tensors in the model, tensors loaded from the checkpoint)."""
        return len(self.model.state_dict()), self._num_applied

    def _log_incompatible_keys(self, incompatible) -> None:
        num_model, num_loaded = self._count_loaded(incompatible)
        clean = (
            num_loaded == num_model
            and not incompatible.unexpected_keys
            and not incompatible.incorrect_shapes
        )
        if clean:
            self.logger.info(self.mismatch_report(incompatible))
            return
        report = self.mismatch_report(incompatible)
        if num_loaded <= 0:
            raise CheckpointMismatchError(
                f"Checkpoint '{self._loading_path}' does not fit this model at all: none of its "
                "tensors matches a model tensor by name and shape, so it was probably written "
                "by another model or config. The model's weights are unchanged.\n" + report
            )
        if self._strict:
            raise CheckpointMismatchError(
                f"Cannot resume from '{self._loading_path}': it was written by a different "
                "model. Resuming needs the exact model of the checkpoint (use the config of "
                "that run, or another train.output_dir to start a new run). The model's weights "
                "are unchanged.\n" + report
            )
        super()._log_incompatible_keys(incompatible)  # detectron2's per-key warnings
        self.logger.warning(report)
