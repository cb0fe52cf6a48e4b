#!/usr/bin/env bash
# The demo (README): installs .venv when missing or stale, then runs the main job: GSPO image RL on the tiny omni
# model over the synthetic image suite (`omni-rl run stage=image_rl`), then writes the plots. Before it, the offline
# pass-rate filter of the same stage (`omni-rl filter stage=image_rl`) scores every prompt with the initial policy.
# Extra arguments are Hydra overrides for the run, e.g. `bash scripts/demo.sh run.steps=10`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/install.sh
export WANDB_MODE="${WANDB_MODE:-offline}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMNI_RL_CACHE="${OMNI_RL_CACHE:-$ROOT/.cache/omni_rl}"
OUT="outputs/demo/image_rl"
FILTER_OUT="outputs/demo/image_rl_filter"
rm -rf "$OUT" "$FILTER_OUT"
echo "== omni-rl verify: one response =="
.venv/bin/omni-rl verify --verifier mathruler --answer 1/2 \
  --response '<think>Half of the pie is left.</think> The answer is \boxed{0.5}'
echo
echo "== omni-rl filter stage=image_rl (8 rollouts per prompt from the initial policy; keep pass rate < 0.8) =="
.venv/bin/omni-rl filter stage=image_rl run.output_dir="$FILTER_OUT"
echo
echo "== omni-rl run stage=image_rl (tiny omni model, synthetic image suite; first run builds + warm-starts the model) =="
.venv/bin/omni-rl run stage=image_rl run.output_dir="$OUT" "$@"
echo
echo "== results =="
.venv/bin/python - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
r = [x["reward/mean"] for x in rows]
k = max(1, min(20, len(r) // 3))  # one step is only 8 prompts: compare windows of steps, not single steps
block = max(1, len(r) // 10)
print(f"mean reward per {block}-step block: {' '.join(f'{sum(r[i:i + block]) / len(r[i:i + block]):.2f}' for i in range(0, len(r), block))}")
print(f"mean reward, first {k} steps {sum(r[:k]) / k:.3f} -> last {k} steps {sum(r[-k:]) / k:.3f}")
PY
echo "filter report: $FILTER_OUT/report.md   pass-rate histogram: $FILTER_OUT/plots/pass_rate.png"
echo "metrics: $OUT/metrics.jsonl   samples: $OUT/samples.jsonl   plots: $OUT/plots/   final model: $OUT/final/"
