"""Every Python code block of README.md runs as written, each in a fresh interpreter on the CPU.

A block is run from the repository root with ``python -c``. A block whose first line is a comment
naming a config file (``# configs/<folder>/<name>.py``) is a config: it is written at that path
in a copy of ``configs/`` and loaded with ``LazyConfig.load``, and its ``model`` is built, as
``train_net.py`` would do.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
CONFIG_BLOCK = re.compile(r"#\s*(configs/[\w/.-]+\.py)\s*$")


def python_blocks():
    """(line number, code) of every ```python block, dedented."""
    blocks, current, start, indent = [], None, 0, ""
    with open(README) as f:
        for number, line in enumerate(f, 1):
            stripped = line.strip()
            if current is None and stripped.startswith("```python"):
                current, start, indent = [], number, line[: len(line) - len(line.lstrip())]
            elif current is not None and stripped.startswith("```"):
                blocks.append((start, textwrap.dedent("".join(current))))
                current = None
            elif current is not None:
                current.append(line[len(indent):] if line.startswith(indent) else line)
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


def _run(code, cwd):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_python_block_runs(line, code, tmp_path):
    first = code.strip().splitlines()[0]
    match = CONFIG_BLOCK.match(first)
    if match:
        # A config file: put it where it says, next to the project's configs, and build it.
        shutil.copytree(os.path.join(ROOT, "configs"), tmp_path / "configs")
        path = tmp_path / match.group(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
        code = (
            "import ddod\n"
            "from detectron2.config import LazyConfig, instantiate\n"
            f"cfg = LazyConfig.load({str(path)!r})\n"
            "instantiate(cfg.model)\n"
        )
    result = _run(code, ROOT)
    assert result.returncode == 0, f"README.md:{line} failed:\n{code}\n{result.stderr[-4000:]}"
