#!/usr/bin/env bash
# Create .venv with the pinned stack of torchrec_nas, choosing the FBGEMM build for this host.
#
# fbgemm-gpu (the CUDA build) fails to import without an NVIDIA driver, and torchrec's metadata
# requires that distribution by name, so on a CPU-only host we install fbgemm-gpu-cpu and then
# torchrec with --no-deps plus its other requirements by name.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$here/.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHREC_VERSION="1.9.2"
FBGEMM_VERSION="1.9.0"
TORCHMETRICS_VERSION="1.0.3"
TORCHX_VERSION="0.7.0"
IOPATH_VERSION="0.1.10"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torchrec_nas, torchrec, fbgemm_gpu" >/dev/null 2>&1; then
  exit 0
fi

echo "[setup] creating $venv with $($python --version)" >&2
"$python" -m venv "$venv"
pip_install() {
  # The machine's pip config may list local indexes; pip warns about each missing folder in
  # them, and about torchrec's requirement on "fbgemm-gpu" (satisfied by fbgemm-gpu-cpu).
  local log rc=0
  log="$(mktemp)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "$@" >"$log" 2>&1 || rc=$?
  grep -v -e "is ignored: it is neither a file nor a directory" \
    -e "dependency resolver does not currently" -e "requires fbgemm-gpu" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  fbgemm="fbgemm-gpu==$FBGEMM_VERSION"
  echo "[setup] NVIDIA driver found: using the CUDA build $fbgemm" >&2
else
  fbgemm="fbgemm-gpu-cpu==$FBGEMM_VERSION"
  echo "[setup] no NVIDIA driver: using the CPU build $fbgemm" >&2
fi

pip_install --upgrade pip
pip_install "torch==$TORCH_VERSION" "$fbgemm"
pip_install "torchmetrics==$TORCHMETRICS_VERSION" tensordict tqdm pyre-extensions \
  "torchx==$TORCHX_VERSION" "iopath==$IOPATH_VERSION" pyyaml numpy pyarrow matplotlib \
  pytest hypothesis ruff mypy types-PyYAML
# torchrec requires the distribution "fbgemm-gpu" by name; the CPU build provides the same module.
pip_install --no-deps "torchrec==$TORCHREC_VERSION"
pip_install --no-deps -e "$here"
"$venv/bin/python" -c "import torch, torchrec, fbgemm_gpu; print('[setup] torch', torch.__version__, 'torchrec ok')" >&2
