"""benchmarks/cpu_load.py: each cell trains the quickstart model in a process of its own, under
the OpenMP setting and the background load it names (the figures themselves are not tested:
timing targets belong in benchmark output, not in unit tests)."""
import math
import multiprocessing

from benchmarks import cpu_load


def test_a_cell_runs_under_its_setting_and_load(monkeypatch):
    started = []
    real_process = multiprocessing.Process

    def counting_process(*args, **kwargs):
        started.append(kwargs.get("target"))
        return real_process(*args, **kwargs)

    monkeypatch.setattr(cpu_load.multiprocessing, "Process", counting_process)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the cell's setting replaces the caller's
    row = cpu_load.measure("project", load_procs=1, steps=3)
    assert row["openmp_env"] == {"GOMP_SPINCOUNT": "10000"} and row["load_procs"] == 1
    assert started == [cpu_load._spin]
    assert math.isfinite(row["median"]) and row["median"] > 0
