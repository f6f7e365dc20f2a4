"""Make detectron2 v0.6's Python sources run on today's stack; a no-op on a full detectron2 install.

Every patch here is guarded (it acts only when the thing it fixes is missing or broken), idempotent,
and tied to the upstream fix it stands in for. :func:`apply` is called by ``ddod/__init__.py``
before anything imports ``detectron2`` submodules.

Patches:

* ``detectron2._C`` stand-in (``ddod/detectron2_c_standin.py``). v0.6 imports its compiled
  extension at module import time (upstream made those imports lazy after v0.6), and the PyPI
  sdist of v0.6 ships no C++ sources. ``dev/setup_env.sh`` installs the stand-in as
  ``detectron2/_C.py`` so that any import order works; when detectron2 came without it, this
  module registers the same file as ``detectron2._C`` before anything imports detectron2.
* ``PIL.Image.LINEAR``: removed in Pillow 10, used as a default argument in v0.6's
  ``ExtentTransform`` (upstream commit ff53992b). Only needed if Pillow>=10 is installed.
* ``detectron2.engine.launch`` on a machine without CUDA: v0.6 asserts CUDA and hard-codes NCCL
  (upstream falls back to GLOO since v0.7). See :func:`_patch_launch_for_cpu`.
* Known-harmless warnings of v0.6 on today's torch: the ``torch.jit.script`` deprecation raised
  while ``detectron2.modeling.box_regression`` is imported (silenced for that import only) and
  ``torch.meshgrid``'s "indexing argument" notice, which v0.6's anchor generator triggers at the
  first forward pass. See :func:`_silence_known_warnings`.
"""
import importlib
import importlib.util
import logging
import os
import sys
import types
import warnings

logger = logging.getLogger(__name__)

_STANDIN_NAME = "detectron2._C"
_applied = False
_STANDIN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectron2_c_standin.py")


def _load_c_standin() -> types.ModuleType:
    """``detectron2_c_standin.py`` loaded as the module ``detectron2._C``."""
    spec = importlib.util.spec_from_file_location(_STANDIN_NAME, _STANDIN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def has_compiled_ops() -> bool:
    """True when detectron2's real compiled extension is importable."""
    apply()
    mod = sys.modules.get(_STANDIN_NAME)
    return mod is not None and not getattr(mod, "DDOD_STANDIN", False)


def _install_c_standin():
    if _STANDIN_NAME in sys.modules:
        return
    try:
        importlib.import_module(_STANDIN_NAME)
        return
    except ImportError:
        pass
    sys.modules[_STANDIN_NAME] = _load_c_standin()
    import detectron2

    detectron2._C = sys.modules[_STANDIN_NAME]
    logger.debug("Installed a stand-in for detectron2._C (no compiled ops).")


def _patch_pillow():
    from PIL import Image

    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR


def _cpu_distributed_worker(
    local_rank, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout=None
):
    """v0.6's ``_distributed_worker`` with the GLOO backend and no CUDA device selection.

    Module level (not a closure) so that ``torch.multiprocessing.spawn`` can pickle it by name.
    """
    import torch.distributed as dist

    from detectron2.utils import comm

    launch_mod = importlib.import_module("detectron2.engine.launch")

    global_rank = machine_rank * num_gpus_per_machine + local_rank
    dist.init_process_group(
        backend="GLOO",
        init_method=dist_url,
        world_size=world_size,
        rank=global_rank,
        timeout=timeout or launch_mod.DEFAULT_TIMEOUT,
    )
    num_machines = world_size // num_gpus_per_machine
    for i in range(num_machines):
        ranks_on_i = list(range(i * num_gpus_per_machine, (i + 1) * num_gpus_per_machine))
        pg = dist.new_group(ranks_on_i)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = pg
    comm.synchronize()
    main_func(*args)


def _patch_launch_for_cpu():
    """Let ``detectron2.engine.launch`` start several CPU processes with the GLOO backend.

    v0.6's ``_distributed_worker`` asserts ``torch.cuda.is_available()`` and always uses NCCL;
    upstream (after v0.6) picks GLOO when there is no GPU. On a machine without CUDA we swap in
    :func:`_cpu_distributed_worker`, which sets up the same global and local process groups with
    GLOO. With CUDA, or on a detectron2 whose ``launch`` already handles CPU, nothing changes.
    The spawned children import ``ddod`` (the pickled worker lives here), so they are patched too.
    """
    import inspect

    import torch

    # `detectron2.engine.launch` the attribute is the function; we need the module.
    launch_mod = importlib.import_module("detectron2.engine.launch")
    if torch.cuda.is_available() or launch_mod._distributed_worker is _cpu_distributed_worker:
        return
    if "gloo" in inspect.getsource(launch_mod._distributed_worker).lower():
        return
    launch_mod._distributed_worker = _cpu_distributed_worker


# (message regex, category) of the warnings silenced for good: harmless, raised inside torch on
# behalf of detectron2 v0.6, and not actionable by a user of this project.
_HARMLESS_WARNINGS = (
    (r"torch\.meshgrid: in an upcoming release, it will be required to pass the indexing", UserWarning),
)
# Raised while these detectron2 modules are imported; silenced for that import only.
_IMPORT_TIME_WARNINGS = {
    "detectron2.modeling.box_regression": (r"`torch\.jit\.script` is deprecated", FutureWarning),
}


def _silence_known_warnings():
    """Hide the deprecation notices of detectron2 v0.6 that say nothing useful to our users.

    The import-time ones are silenced by importing their module once under a scoped filter
    (a detectron2 already imported before ``ddod`` has shown them already); the run-time ones
    with a filter on their exact message.
    """
    for message, category in _HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for module, (message, category) in _IMPORT_TIME_WARNINGS.items():
        if module in sys.modules:
            continue
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=message, category=category)
            importlib.import_module(module)


def apply():
    """Apply every patch that this detectron2 install needs. Idempotent."""
    global _applied
    if _applied:
        return
    _applied = True
    _patch_pillow()
    _install_c_standin()
    _silence_known_warnings()
    _patch_launch_for_cpu()
