"""Does this CPU run bfloat16 natively? The one place that decides CPU mixed precision.

CPU autocast computes convolutions and matrix products in bfloat16 through oneDNN. That is fast
only where the CPU has bfloat16 instructions (AVX512_BF16, AMX, AVX-NE-CONVERT) *and* oneDNN is
allowed to use them. Elsewhere oneDNN emulates bfloat16 or falls back to reference kernels: one
3x3 conv measured 150 ms in float32 and 70 s under bfloat16 autocast with oneDNN capped to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``), and 2.6x slower than float32 when capped to AVX512_CORE (no
AVX512_BF16). So mixed precision on such a CPU is not a speed-up but a trap, and the callers
(``train.amp.enabled`` in :class:`ddod.engine.Trainer`, the benchmarks) run float32 instead, with
one warning that says why.

``DDOD_CPU_BF16=1`` forces bfloat16 anyway (to measure or test it), ``DDOD_CPU_BF16=0`` forces
float32; unset (or ``auto``) lets :func:`bf16_support` decide.
"""
import functools
import logging
import os
import platform
from typing import List, NamedTuple, Optional, Set

import torch

__all__ = [
    "Bf16Support",
    "bf16_support",
    "cpu_autocast_dtype",
    "cpu_description",
    "cpu_model",
    "hardware_isa",
    "onednn_isa_cap",
]

logger = logging.getLogger(__name__)

OVERRIDE_ENV = "DDOD_CPU_BF16"

# oneDNN's ISA names, lowest first (oneDNN v3 documentation of ONEDNN_MAX_CPU_ISA). Only the
# order matters here: a cap below the ISA that carries the CPU's bf16 instructions disables them.
_ONEDNN_ISA_ORDER = [
    "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2",
]  # fmt: skip
_NO_CAP = {"", "ALL", "DEFAULT"}

# Hardware feature (as named in /proc/cpuinfo) -> the lowest oneDNN ISA that uses it for bf16.
_BF16_FEATURES = {
    "amx_bf16": "AVX512_CORE_AMX",
    "avx512_bf16": "AVX512_CORE_BF16",
    "avx_ne_convert": "AVX2_VNNI_2",
}

_warned: Set[str] = set()  # purposes already warned about: one warning per purpose and process


class Bf16Support(NamedTuple):
    """Whether bfloat16 autocast is native here, and a sentence that says why (for messages)."""

    native: bool
    reason: str


# ----------------------------------------------------------------------------------------------
# what the CPU has
# ----------------------------------------------------------------------------------------------
def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo ({} where there is none, e.g. macOS)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # end of the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _torch_cpu_check(name: str) -> bool:
    """``torch.cpu._is_<name>_supported()`` (cpuinfo-based, any OS); False where absent."""
    fn = getattr(torch.cpu, f"_is_{name}_supported", None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:  # noqa: BLE001  (a private helper: never let it break a caller)
        return False


def _hardware_flags() -> Set[str]:
    """Lower-case feature flags of the CPU, from /proc/cpuinfo or, without it, from torch."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").lower().split())
    if flags:
        return flags
    # No /proc/cpuinfo (macOS, Windows): torch's own cpuinfo checks, under Linux flag names.
    checks = {"avx2": "avx2", "avx512f": "avx512", "avx512_bf16": "avx512_bf16",
              "amx_bf16": "amx_tile"}  # fmt: skip
    return {flag for flag, check in checks.items() if _torch_cpu_check(check)}


def hardware_isa() -> List[str]:
    """The vector ISAs that matter for speed here, as short names: a subset of
    ``["avx2", "avx512", "avx512_bf16", "avx_ne_convert", "amx"]`` (what the hardware has,
    whatever caps the environment sets)."""
    flags = _hardware_flags()
    names = [("avx2", "avx2"), ("avx512", "avx512f"), ("avx512_bf16", "avx512_bf16"),
             ("avx_ne_convert", "avx_ne_convert"), ("amx", "amx_bf16")]  # fmt: skip
    return [name for name, flag in names if flag in flags]


def onednn_isa_cap() -> Optional[str]:
    """The ISA that ``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) caps oneDNN to,
    upper-case; None when there is no cap."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(var, "").strip().upper()
        if value not in _NO_CAP:
            return value
    return None


def _cap_allows(cap: Optional[str], needed: str) -> bool:
    """Whether a oneDNN cap leaves ``needed`` usable (an unknown cap name is taken as no cap:
    oneDNN itself ignores names it does not know)."""
    if cap is None or cap not in _ONEDNN_ISA_ORDER:
        return True
    return _ONEDNN_ISA_ORDER.index(cap) >= _ONEDNN_ISA_ORDER.index(needed)


def _onednn_bf16_check() -> bool:
    """torch's own check (oneDNN's effective ISA, which follows ONEDNN_MAX_CPU_ISA); it counts
    AVX512_CORE's emulated bf16 as supported, hence the stricter checks around it."""
    if not torch.backends.mkldnn.is_available():
        return False
    fn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:  # noqa: BLE001
        return False


# ----------------------------------------------------------------------------------------------
# the decision
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def bf16_support() -> Bf16Support:
    """Whether bfloat16 autocast runs on native instructions on this CPU, with oneDNN's caps.

    x86: the CPU must have AVX512_BF16, AMX-BF16 or AVX-NE-CONVERT, ``ONEDNN_MAX_CPU_ISA`` must
    not cap oneDNN below the ISA that uses it, and torch's oneDNN check must agree. Other
    architectures (e.g. ARM with BF16): torch's oneDNN check alone. Cached: oneDNN reads its cap
    once per process too.
    """
    if not torch.backends.mkldnn.is_available():
        return Bf16Support(False, "this torch build has no oneDNN, so no fast bf16 kernels")
    if not _is_x86():
        if _onednn_bf16_check():
            return Bf16Support(True, f"oneDNN reports native bf16 on this {platform.machine()}")
        return Bf16Support(False, f"oneDNN reports no native bf16 on this {platform.machine()}")

    flags = _hardware_flags()
    usable = [f for f in _BF16_FEATURES if f in flags]
    isa = "/".join(hardware_isa()) or "no AVX2"
    if not usable:
        return Bf16Support(False, f"this CPU has no bf16 instructions (ISA: {isa}; it lacks "
                                  "avx512_bf16, amx_bf16 and avx_ne_convert)")  # fmt: skip
    cap = onednn_isa_cap()
    if not any(_cap_allows(cap, _BF16_FEATURES[f]) for f in usable):
        return Bf16Support(False, f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN from the CPU's bf16 "
                                  f"instructions ({', '.join(usable)})")  # fmt: skip
    if not _onednn_bf16_check():
        return Bf16Support(False, "torch's oneDNN reports no bf16 support on this CPU")
    return Bf16Support(True, f"the CPU has {', '.join(usable)} and oneDNN may use it")


def _override() -> Optional[bool]:
    """DDOD_CPU_BF16: True (force bf16), False (force fp32) or None (decide)."""
    value = os.environ.get(OVERRIDE_ENV, "").strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    return None


def cpu_autocast_dtype(
    purpose: str, fallback: str = "running in float32 instead of bfloat16 autocast"
) -> Optional[torch.dtype]:
    """The dtype for CPU autocast, or None for float32.

    ``torch.bfloat16`` where :func:`bf16_support` says it is native (or ``DDOD_CPU_BF16=1``);
    otherwise None, after one warning per ``purpose`` and process that says why.

    Args:
        purpose: what asked for mixed precision, for the warning (e.g. "train.amp.enabled").
        fallback: what the caller does instead, for the warning (e.g. "skipped").
    """
    forced = _override()
    if forced is not None:
        return torch.bfloat16 if forced else None
    support = bf16_support()
    if support.native:
        return torch.bfloat16
    if purpose not in _warned:
        _warned.add(purpose)
        logger.warning(
            f"{purpose}: {fallback}, because {support.reason}. "
            f"Emulated bfloat16 is far slower than float32 (a 3x3 conv measured 150-470x). "
            f"Set {OVERRIDE_ENV}=1 to use bfloat16 anyway."
        )
    return None


# ----------------------------------------------------------------------------------------------
# description, for benchmark headers and READMEs
# ----------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's marketing name, e.g. "AMD EPYC" or "Intel(R) Xeon(R) Platinum 8375C"."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or "unknown CPU"


def cpu_description() -> str:
    """One line: ISA, the caps of the environment, and the bf16 decision with its reason."""
    parts = [f"ISA: {' '.join(hardware_isa()) or 'no AVX2'}"]
    cap = onednn_isa_cap()
    if cap:
        parts.append(f"ONEDNN_MAX_CPU_ISA={cap}")
    aten = getattr(torch.backends.cpu, "get_cpu_capability", None)
    if aten is not None:
        parts.append(f"ATen kernels {aten()}")
    support = bf16_support()
    parts.append(f"bf16 {'native' if support.native else 'NOT native'} ({support.reason})")
    forced = _override()
    if forced is not None:
        forced_dtype = "bf16" if forced else "fp32"
        parts.append(f"{OVERRIDE_ENV}={os.environ[OVERRIDE_ENV]} forces {forced_dtype}")
    return "; ".join(parts)
