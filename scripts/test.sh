#!/usr/bin/env bash
# The test command (README, CI): installs .venv when missing or stale, then runs the whole suite on CPU.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` or `bash scripts/test.sh tests/verifiers`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/install.sh
export WANDB_MODE=offline WANDB_SILENT=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMNI_RL_CACHE="${OMNI_RL_CACHE:-$ROOT/.cache/omni_rl}"
exec .venv/bin/python -m pytest -q "$@"
