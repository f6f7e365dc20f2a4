"""Stand-in for ``detectron2._C``, the compiled extension that detectron2 v0.6 imports eagerly.

This file is self-contained on purpose: ``dev/setup_env.sh`` copies it to
``<site-packages>/detectron2/_C.py`` when detectron2 was installed from its Python sources only
(the PyPI sdist of v0.6 has no C++ sources), so that ``import detectron2.modeling`` works in any
import order, before or without ``import ddod``. ``ddod.compat`` loads the same file as
``detectron2._C`` when no such module exists (a detectron2 installed some other way). A full
detectron2 install has the real extension, and neither path touches it.

v0.6 imports ``_C`` at module import time in ``layers/deform_conv.py``, ``layers/rotated_boxes.py``,
``layers/roi_align_rotated.py`` and ``evaluation/fast_eval_api.py`` (upstream made those imports
lazy after v0.6). The dense detectors of this project use ``torchvision.ops`` instead, so this
module answers the two version queries of ``collect_env_info`` and raises a clear error for any
compiled op someone's own code asks for.
"""

DDOD_STANDIN = True


class MissingCompiledOpError(RuntimeError):
    """A compiled detectron2 op was requested, but detectron2 was installed without them."""


def get_compiler_version() -> str:
    return "not built (detectron2 Python sources only)"


def get_cuda_version() -> str:
    return "not built"


def has_cuda() -> bool:
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise MissingCompiledOpError(
        f"detectron2._C.{name} is not available: detectron2 was installed without its compiled "
        "ops. The DDOD project does not need them; if your own code does, install detectron2 "
        "from its repository."
    )
