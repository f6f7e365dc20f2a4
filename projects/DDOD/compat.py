"""Make detectron2 v0.6's Python sources run on today's stack; a no-op on a full detectron2 install.

Every patch here is guarded (it acts only when the thing it fixes is missing or broken), idempotent,
and tied to the upstream fix it stands in for. :func:`apply` is called by ``ddod/__init__.py``
before anything imports ``detectron2`` submodules.

Patches:

* ``detectron2._C`` stand-in. v0.6 imports its compiled extension at module import time in
  ``layers/deform_conv.py``, ``layers/rotated_boxes.py``, ``layers/roi_align_rotated.py`` and
  ``evaluation/fast_eval_api.py`` (upstream made those imports lazy after v0.6). The PyPI sdist of
  v0.6 ships no C++ sources, so the extension does not exist. None of those ops is used by the
  dense detectors here (they use ``torchvision.ops``), so a module that answers the two version
  queries ``collect_env_info`` makes and raises a clear error for anything else is enough.
* ``PIL.Image.LINEAR``: removed in Pillow 10, used as a default argument in v0.6's
  ``ExtentTransform`` (upstream commit ff53992b). Only needed if Pillow>=10 is installed.
* ``detectron2.engine.launch`` on a machine without CUDA: v0.6 asserts CUDA and hard-codes NCCL
  (upstream falls back to GLOO since v0.7). See :func:`_patch_launch_for_cpu`.
"""
import importlib
import logging
import sys
import types

logger = logging.getLogger(__name__)

_STANDIN_NAME = "detectron2._C"
_applied = False


class MissingCompiledOpError(RuntimeError):
    pass


def _make_c_standin() -> types.ModuleType:
    module = types.ModuleType(_STANDIN_NAME)
    module.__doc__ = "Stand-in for detectron2's compiled ops (installed by ddod.compat)."
    module.DDOD_STANDIN = True
    module.get_compiler_version = lambda: "not built (detectron2 Python sources only)"
    module.get_cuda_version = lambda: "not built"
    module.has_cuda = lambda: False

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingCompiledOpError(
            f"detectron2._C.{name} is not available: detectron2 was installed without its "
            "compiled ops. The DDOD project does not need them; if your own code does, install "
            "detectron2 from its repository."
        )

    module.__getattr__ = __getattr__
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
    sys.modules[_STANDIN_NAME] = _make_c_standin()
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


def apply():
    """Apply every patch that this detectron2 install needs. Idempotent."""
    global _applied
    if _applied:
        return
    _applied = True
    _patch_pillow()
    _install_c_standin()
    _patch_launch_for_cpu()
