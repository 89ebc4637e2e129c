#!/usr/bin/env bash
# Creates the virtual environment the fixture generators and reference tools run in (venv/ at the repository
# root, ignored by git) with the pinned packages of tools/requirements.txt; CPU-only torch.
#
#   tools/setup_venv.sh [VENV_DIR=venv]
# The public auto-round, for the interop and comparison tools, is an optional extra:
#   venv/bin/pip install auto-round==0.16.1
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$repo/venv}
command -v python3 >/dev/null || { echo "setup_venv: python3 not found (Debian: apt-get install python3 python3-venv)" >&2; exit 2; }
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet --extra-index-url https://download.pytorch.org/whl/cpu -r "$repo/tools/requirements.txt"
echo "venv ready: $venv ($("$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
