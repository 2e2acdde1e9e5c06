#!/usr/bin/env bash
# Install raympa into the active Python environment.
#   bash scripts/install.sh          # the package (runs every CLI command and study)
#   bash scripts/install.sh --test   # + pytest, and headless Chromium for the report test (Debian, as root)
#
# torch comes first, so that pip never pulls a multi-GB CUDA build on a CPU machine:
#   * torch already importable (a GPU user's own build, say): kept as it is;
#   * an NVIDIA GPU present: torch==2.13.0 from PyPI (its Linux wheel is a CUDA 13 build: NVIDIA
#     driver 580 or later; with an older driver install a torch for your CUDA first, it is kept);
#   * otherwise: the CPU build, torch==2.13.0 (+cpu), from PyTorch's CPU index or a local wheel
#     directory configured for pip (PIP_FIND_LINKS).
# 2.13.0 is the torch the project is tested with. Extra pip settings (PIP_CONSTRAINT, ...) reach
# every pip call here: tests/test_install.py installs the declared lower bounds that way.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python}"

if "$py" -c "import torch" 2>/dev/null; then
  echo "install: torch $("$py" -c 'import torch; print(torch.__version__)') already present, kept"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$py" -m pip install "torch==2.13.0"
else
  "$py" -m pip install "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu \
    --retries 1 --timeout 20
fi

if [[ "${1:-}" == "--test" ]]; then
  "$py" -m pip install -e "$here[test]"
  # Headless Chromium for the report test (skipped with a reason when it cannot be installed).
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "install: chromium not installed; the report rendering test will be skipped"
  fi
else
  "$py" -m pip install -e "$here"
fi
