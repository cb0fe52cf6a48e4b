#!/usr/bin/env bash
# The demo (README): installs .venv when missing or stale, then runs the main job.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/install.sh
export WANDB_MODE="${WANDB_MODE:-offline}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMNI_RL_CACHE="${OMNI_RL_CACHE:-$ROOT/.cache/omni_rl}"
echo "== omni-rl verify: one response =="
.venv/bin/omni-rl verify --verifier mathruler --answer '"1/2"' \
  --response '<think>Half of the pie is left.</think> The answer is \boxed{0.5}'
echo "== omni-rl verify: the bundled sample batch (process pool, per-item deadline) =="
.venv/bin/omni-rl verify --input omni_rl/samples/verify_samples.jsonl --output outputs/demo/verify_scores.jsonl
head -n 5 outputs/demo/verify_scores.jsonl
