"""CPU mixed precision only where the CPU runs bfloat16 natively (ddod.utils.cpu), and the
trainer's use of that decision: ``train.amp.enabled`` trains in bfloat16 where it is native, in
float32 with one warning where it is not."""
import logging
import os
import subprocess
import sys

import pytest
import torch

from ddod.engine import CPUAutocastTrainer, Trainer
from ddod.utils import cpu

from .test_trainer import make_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fresh(monkeypatch):
    """No cached decision, no warning given yet, no caps or override from the caller's shell."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", cpu.OVERRIDE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cpu, "_warned", set())
    decide = cpu.bf16_support  # the real, cached one (some tests replace it)
    decide.cache_clear()
    yield monkeypatch
    decide.cache_clear()  # so later tests see this host's own answer again


def fake_cpu(monkeypatch, flags, onednn_says=True):
    """An x86 CPU with these /proc/cpuinfo flags; torch's oneDNN check answers ``onednn_says``."""
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(cpu, "_is_x86", lambda: True)
    monkeypatch.setattr(cpu, "_hardware_flags", lambda: set(flags))
    monkeypatch.setattr(cpu, "_onednn_bf16_check", lambda: onednn_says)
    cpu.bf16_support.cache_clear()


def patch_support(monkeypatch, native: bool):
    monkeypatch.setattr(cpu, "bf16_support", lambda: cpu.Bf16Support(native, "patched reason"))


class Records(logging.Handler):
    """The warnings of ddod.utils.cpu (the "ddod" logger does not propagate to caplog's root)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_seen():
    handler = Records()
    logger = logging.getLogger(cpu.__name__)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


# ----------------------------------------------------------------------------------------------
# the capability check
# ----------------------------------------------------------------------------------------------
def test_avx2_only_cpu_is_not_native(fresh):
    fake_cpu(fresh, {"sse4_2", "avx", "avx2", "fma"}, onednn_says=False)
    support = cpu.bf16_support()
    assert not support.native
    assert "no bf16 instructions" in support.reason and "avx2" in support.reason


def test_avx512_without_bf16_is_not_native_although_onednn_accepts_it(fresh):
    # oneDNN counts AVX512_CORE as bf16-capable (it emulates); measured 2.6x slower than fp32.
    fake_cpu(fresh, {"avx2", "avx512f", "avx512bw"}, onednn_says=True)
    assert not cpu.bf16_support().native


@pytest.mark.parametrize("cap", ["AVX2", "avx512_core", "AVX512_CORE_VNNI"])
def test_onednn_cap_below_bf16_disables_it(fresh, cap):
    fake_cpu(fresh, {"avx2", "avx512f", "avx512_bf16"})
    fresh.setenv("ONEDNN_MAX_CPU_ISA", cap)
    support = cpu.bf16_support()
    assert not support.native
    assert f"ONEDNN_MAX_CPU_ISA={cap.upper()}" in support.reason


@pytest.mark.parametrize("cap", [None, "ALL", "AVX512_CORE_BF16", "AVX512_CORE_AMX", "FUTURE_ISA"])
def test_bf16_cpu_is_native_unless_capped(fresh, cap):
    fake_cpu(fresh, {"avx2", "avx512f", "avx512_bf16"})
    if cap:
        fresh.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert cpu.bf16_support().native


def test_amx_needs_no_more_than_its_own_isa(fresh):
    fake_cpu(fresh, {"avx2", "avx512f", "amx_bf16", "amx_tile"})
    fresh.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert not cpu.bf16_support().native  # the cap is below AVX512_CORE_AMX
    fresh.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    cpu.bf16_support.cache_clear()
    assert cpu.bf16_support().native


def test_torch_onednn_check_has_the_last_word(fresh):
    fake_cpu(fresh, {"avx2", "avx512f", "avx512_bf16"}, onednn_says=False)
    assert not cpu.bf16_support().native


def test_real_check_follows_the_onednn_cap():
    # Unpatched, in a fresh interpreter: whatever this CPU has, a cap to AVX2 makes bf16
    # non-native (the simulation of an AVX2-only host that the benchmark figures use).
    code = "from ddod.utils import cpu; print(cpu.bf16_support().native, cpu.cpu_description())"
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    env.pop(cpu.OVERRIDE_ENV, None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("False "), out.stdout
    assert "ATen kernels AVX2" in out.stdout


# ----------------------------------------------------------------------------------------------
# the decision and its warning
# ----------------------------------------------------------------------------------------------
def test_fallback_warns_once_per_purpose_and_says_why(fresh, warnings_seen):
    patch_support(fresh, native=False)
    assert cpu.cpu_autocast_dtype("train.amp.enabled") is None
    assert cpu.cpu_autocast_dtype("train.amp.enabled") is None
    assert len(warnings_seen) == 1
    assert "train.amp.enabled" in warnings_seen[0] and "float32" in warnings_seen[0]
    assert "patched reason" in warnings_seen[0] and cpu.OVERRIDE_ENV in warnings_seen[0]
    assert cpu.cpu_autocast_dtype("benchmark") is None
    assert len(warnings_seen) == 2  # another caller is told too


def test_native_gives_bf16_without_warning(fresh, warnings_seen):
    patch_support(fresh, native=True)
    assert cpu.cpu_autocast_dtype("train.amp.enabled") is torch.bfloat16
    assert warnings_seen == []


@pytest.mark.parametrize("value,native,expected", [
    ("1", False, torch.bfloat16), ("0", True, None), ("auto", True, torch.bfloat16),
])  # fmt: skip
def test_override_env(fresh, warnings_seen, value, native, expected):
    patch_support(fresh, native=native)
    fresh.setenv(cpu.OVERRIDE_ENV, value)
    assert cpu.cpu_autocast_dtype("train.amp.enabled") is expected
    assert warnings_seen == []  # an explicit choice is not warned about


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
def train_and_record_dtypes(output_dir, max_iter=2):
    """Train the tiny model with train.amp.enabled; the dtypes of its first layer's output in
    training (the evaluation after training runs without autocast)."""
    cfg = make_cfg(output_dir, max_iter=max_iter)
    cfg.train.amp.enabled = True
    trainer = Trainer(cfg)
    seen = set()
    first_layer = trainer.model.net[0]
    def record(module, inputs, output):
        if module.training:
            seen.add(output.dtype)

    hook = first_layer.register_forward_hook(record)
    try:
        trainer.train()
    finally:
        hook.remove()
    return trainer, seen


def test_trainer_runs_bf16_where_native(fresh, tmp_path, warnings_seen):
    patch_support(fresh, native=True)
    trainer, dtypes = train_and_record_dtypes(tmp_path / "out")
    assert isinstance(trainer._trainer, CPUAutocastTrainer)
    assert dtypes == {torch.bfloat16}
    assert warnings_seen == []


def test_trainer_falls_back_to_fp32_with_one_warning(fresh, tmp_path, warnings_seen):
    patch_support(fresh, native=False)
    trainer, dtypes = train_and_record_dtypes(tmp_path / "out", max_iter=3)
    assert not isinstance(trainer._trainer, CPUAutocastTrainer)
    assert dtypes == {torch.float32}
    assert not torch.is_autocast_enabled("cpu")
    # A second trainer in the same process (e.g. a test after training) does not repeat it.
    train_and_record_dtypes(tmp_path / "again")
    assert len(warnings_seen) == 1
    assert warnings_seen[0].startswith("train.amp.enabled: running in float32 instead of bf")
