#!/usr/bin/env bash
# Creates (once) the project-local virtual environment .venv with everything the quickstart and
# the tests need, then reuses it. Safe to re-run: it only does the steps whose stamp is missing.
#
# Why this is not a plain `pip install -r requirements.txt`:
#  * detectron2 has no PyPI package under its own name. `pb1-detectron2==0.6` is an sdist holding
#    detectron2 v0.6's Python files but no C++/CUDA sources, so it cannot be pip-installed; we
#    download it and copy its Python package into the venv. Our compat module
#    (ddod/compat.py) supplies what the missing compiled part would have provided.
#  * torchvision on PyPI is built against CUDA torch, so we install the CUDA build of torch (it runs
#    fine on a CPU-only machine) and keep pip away from any local CPU-only torch wheel.
# Users with a full detectron2 (built from its repository) can skip this and `pip install -e .`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DDOD_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.ddod-env-v3"  # v3: onnx, onnxscript, onnxruntime (export)

if [ -f "$STAMP" ]; then
  exit 0
fi

echo "[setup_env] creating $VENV (first run only; downloads ~5 GB of torch/CUDA wheels)"
"$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
# A local CPU-only torch wheel folder would make pip pick torch+cpu, with which PyPI's torchvision
# cannot load (its ops link against libtorch_cuda). Ignore local wheel folders for this install.
pipi() { env -u PIP_FIND_LINKS PIP_NO_FIND_LINKS=1 "$VPY" -m pip install --disable-pip-version-check "$@"; }

# pip is pinned: newer pips refuse to even download pb1-detectron2's sdist because its metadata
# names a direct-URL dependency (in an extra we do not use).
pipi "pip==23.2.1" "setuptools<82" wheel
pipi "torch==2.15.0" "torchvision==0.29.2"
pipi -r "$ROOT/dev/requirements.txt"

# detectron2 v0.6 Python sources, without the compiled extension.
D2_VERSION=0.6
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$VPY" -c "import detectron2" 2>/dev/null; then
  TMP="$(mktemp -d)"
  env -u PIP_FIND_LINKS "$VPY" -m pip download --no-deps --no-binary :all: --no-build-isolation \
    "pb1-detectron2==$D2_VERSION" -d "$TMP" >/dev/null
  tar -xzf "$TMP"/pb1-detectron2-*.tar.gz -C "$TMP"
  SRC="$(find "$TMP" -maxdepth 2 -type d -name 'pb1-detectron2-*' | head -1)"
  cp -r "$SRC/detectron2" "$SITE/detectron2"
  rm -rf "$TMP"
fi

# detectron2 v0.6 imports its compiled extension `detectron2._C` eagerly. Without it (the sdist
# has no C++ sources), install our stand-in as detectron2/_C.py, so that `import detectron2.*`
# works in any order, before or without `import ddod`. A real compiled extension is left alone.
if ! "$VPY" -c "import detectron2._C" 2>/dev/null; then
  cp "$ROOT/projects/DDOD/detectron2_c_standin.py" "$SITE/detectron2/_C.py"
fi

# The project itself, editable, so `import ddod` works from anywhere.
pipi --no-deps --no-build-isolation -e "$ROOT"

"$VPY" -c "from detectron2.modeling import build_model; import ddod, detectron2, torchvision; print('[setup_env] ok: detectron2', detectron2.__version__, 'torchvision', torchvision.__version__)"
touch "$STAMP"
