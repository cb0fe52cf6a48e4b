"""`omni-rl run stage=mpo` end to end through the real CLI: pairs built from the synthetic image suite with the
warm-started tiny omni model (`omni-rl build-preferences`, cached), reference log-probs, MPO in the trainer actor,
greedy held-out evaluation in vLLM with the RL verifiers, checkpoints and `final/`.

Learning thresholds sit well below the worst run of a sweep (`scripts/bench_mpo.py --seeds 5 --seed-keys run.seed`,
docs/training.md; min / median / max): preference accuracy of the last 10 steps 0.863 / 0.950 / 0.956 (threshold
0.70), held-out greedy reward rise +0.492 / +0.520 / +0.534 (threshold 0.20).
A second test kills a short run with SIGKILL after step 3, resumes it, and compares every metric with an
uninterrupted run, delta included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stage_runs import metrics, run_stage, window_mean

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MIN_ACCURACY_END = 0.70  # sweep min 0.863 (last 10 steps); at step 0 every pair is a tie (0.5)
MIN_HELD_OUT_RISE = 0.20  # sweep min 0.492


def test_mpo_stage_learns_and_exports_a_checkpoint(tmp_path):
    out = run_stage(tmp_path / "mpo", "stage=mpo")
    rows = metrics(out)
    steps = [r for r in rows if "mpo/accuracy" in r]
    assert [r["step"] for r in steps] == list(range(60))
    assert steps[0]["mpo/accuracy"] == 0.5 and abs(steps[0]["mpo/reward_margin"]) < 1e-6  # policy == reference
    assert steps[0]["mpo/delta"] == pytest.approx(0.01 * (steps[0]["mpo/chosen_reward"]
                                                          + steps[0]["mpo/rejected_reward"]) / 2, abs=1e-9)
    assert window_mean(steps, "mpo/accuracy", 10, first=False) >= MIN_ACCURACY_END
    assert window_mean(steps, "mpo/reward_margin", 10, first=False) > 0
    evals = [r for r in rows if "eval/mean" in r]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 60  # before MPO, and after its last update
    assert evals[-1]["eval/mean"] - evals[0]["eval/mean"] >= MIN_HELD_OUT_RISE
    for key in ("mpo/pref_loss", "mpo/quality_loss", "mpo/sft_loss", "train/grad_norm"):
        assert all(key in r for r in steps), key
    final = out / "final"
    assert (final / "config.json").is_file() and (final / "model.safetensors").is_file()
    from omni_rl.models import load_processor, resolve_family

    assert load_processor(final, resolve_family(final)) is not None  # a valid model.path for the next stage
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    assert ckpts == ["step_000039", "step_000059"]
    assert (out / "plots" / "mpo_accuracy.png").is_file() and (out / "reference_logp.json").is_file()


COMMON = ["stage=mpo", "run.steps=6", "run.checkpoint_every=1", "run.eval_every=0", "logging.wandb_mode=disabled",
          "logging.progress=false", "logging.plot=false"]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", *COMMON, f"run.output_dir={out}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, start_new_session=True)


def test_mpo_killed_and_resumed_matches_uninterrupted(tmp_path):
    full = _run(tmp_path / "full")
    assert full.returncode == 0, full.stdout[-2000:] + full.stderr[-3000:]
    killed = _run(tmp_path / "resumed", "run.stop_after_steps=3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = _run(tmp_path / "resumed", "run.resume=true")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    a = {r["step"]: r for r in metrics(tmp_path / "full")}
    b = {r["step"]: r for r in metrics(tmp_path / "resumed")}
    assert sorted(b) == list(range(6))
    assert json.loads((tmp_path / "full" / "reference_logp.json").read_text()) == \
        json.loads((tmp_path / "resumed" / "reference_logp.json").read_text())
    for step in range(3, 6):
        for key in ("train/loss", "mpo/delta", "mpo/accuracy", "mpo/reward_margin", "train/grad_norm"):
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-9, abs=1e-12), (step, key)
    assert b[5]["mpo/delta"] != 0.0
