#!/usr/bin/env bash
# Installs the project on one Cloud TPU VM worker (run on every worker by
# trainer/launch_tpu.sh). Idempotent: a second run only refreshes the install.
#
#   bash deploy/tpu/setup_worker.sh [PROJECT_DIR]
#
# PROJECT_DIR (default: the checkout this script sits in) gets a virtual
# environment in PROJECT_DIR/.venv with the project's pinned dependencies, the
# trainer's among them (the `trainer` extra), and jax's TPU runtime (libtpu)
# at the same jax version.
set -euo pipefail

project_dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
cd "${project_dir}"

if ! command -v python3 >/dev/null; then
  echo "setup_worker: python3 is missing on this TPU VM image" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[trainer]'
# The same jax version as pyproject.toml pins, with the TPU runtime.
jax_version="$(.venv/bin/python -c 'import jax; print(jax.__version__)')"
.venv/bin/python -m pip install --quiet "jax[tpu]==${jax_version}"
.venv/bin/python -c 'import jax; print(f"setup_worker: {jax.local_device_count()} local TPU devices, jax {jax.__version__}")'
