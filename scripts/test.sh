#!/usr/bin/env bash
# The test command (README, CI): installs .venv when missing or stale, then runs the whole suite on CPU.
# Test files run on 2 pytest-xdist workers (one file stays on one worker, longest files first: tests/conftest.py);
# OMNI_RL_TEST_WORKERS=0 runs everything in this process. Extra arguments go to pytest, e.g.
# `bash scripts/test.sh -m "not slow"` or `bash scripts/test.sh tests/verifiers`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/install.sh
export WANDB_MODE=offline WANDB_SILENT=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMNI_RL_CACHE="${OMNI_RL_CACHE:-$ROOT/.cache/omni_rl}"
WORKERS="${OMNI_RL_TEST_WORKERS:-2}"
if [[ "$WORKERS" != 0 ]]; then
  # one torch / OpenMP thread per process: two workers each running a 2-thread warm start on 2 cores spin-wait on
  # each other (seen: a stage test that takes 2.5 min alone still running after 11 min). Ray gives its 1-CPU actors
  # one thread anyway.
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
fi
exec .venv/bin/python -m pytest -q -n "$WORKERS" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
