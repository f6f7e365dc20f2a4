"""A :class:`DetectionCheckpointer` that fails loudly and never leaves a model half-loaded.

detectron2 v0.6's checkpointer (through fvcore) has three weak spots on today's stack:

* a missing file surfaces as ``AssertionError: Checkpoint ... not found!`` (or, for a URL, as
  whatever the download raised), and a truncated or corrupt file as a bare pickle/zip error that
  does not say which file was being read;
* with torch >= 2.6, ``torch.load`` defaults to ``weights_only=True``; a ``.pth`` holding numpy
  arrays or other Python objects then fails with a long ``UnpicklingError`` (detectron2 issue
  #5456, still open upstream);
* the model weights are applied before the trainer/optimizer state, so a checkpoint whose trainer
  state does not fit leaves a model with new weights and an old optimizer.

:class:`DetectionCheckpointer` here is a drop-in subclass of detectron2's: it reads the whole file
and checks its structure before touching the model, raises :class:`CheckpointError` naming the
file and the problem, restores the previous weights if applying the checkpoint fails half-way, and
logs a one-line summary of how many tensors were loaded next to the usual missing/unexpected/
shape-mismatch report.
"""

import inspect
import logging
import os
import pickle
from collections.abc import Mapping
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from detectron2.checkpoint import DetectionCheckpointer as _D2DetectionCheckpointer

__all__ = ["CheckpointError", "CheckpointNotFoundError", "DetectionCheckpointer"]

# Set to "0" to let ``torch.load`` unpickle arbitrary Python objects in ``.pth`` files. Only do
# this for files you trust: unpickling can run code.
WEIGHTS_ONLY_ENV = "DDOD_CHECKPOINT_WEIGHTS_ONLY"

_TORCH_LOAD_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read or applied. The message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a :class:`FileNotFoundError`)."""


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
        try:
            return super().load(path, checkpointables=checkpointables)
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
        if self.update_last_checkpoint:
            super().tag_last_checkpoint(last_filename_basename)

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
    def _log_incompatible_keys(self, incompatible) -> None:
        super()._log_incompatible_keys(incompatible)  # the detailed per-key warnings
        num_model = len(self.model.state_dict())
        num_loaded = num_model - len(incompatible.missing_keys) - len(incompatible.incorrect_shapes)
        problems = [
            f"{len(incompatible.missing_keys)} missing",
            f"{len(incompatible.unexpected_keys)} unexpected",
            f"{len(incompatible.incorrect_shapes)} with mismatched shapes",
        ]
        message = "Loaded {} of {} model tensors from '{}' ({}).".format(
            num_loaded, num_model, self._loading_path, ", ".join(problems)
        )
        clean = num_loaded == num_model and not incompatible.unexpected_keys
        self.logger.log(logging.INFO if clean else logging.WARNING, message)
