"""Shared by the end-to-end stage tests: run `omni-rl run` in a subprocess, read its metrics, window means."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_stage(out: Path, *overrides: str, timeout: int = 1800) -> Path:
    """`omni-rl run ...` with offline wandb and no progress bar; asserts it exits 0; returns the run dir."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    p = subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", *overrides, "logging.wandb_mode=offline",
                        "logging.progress=false", f"run.output_dir={out}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return out


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def window_mean(rows: list[dict], key: str, window: int, *, first: bool) -> float:
    """Mean of `key` over the first / last `window` steps that log it (a step may miss a source)."""
    vals = [r[key] for r in rows if key in r]
    pick = vals[:window] if first else vals[-window:]
    return sum(pick) / len(pick)


def run_filter(out: Path, *overrides: str, timeout: int = 1800) -> dict:
    """`omni-rl filter ... filter.score=reward` (every row, keep_all); asserts it exits 0; returns report.json."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    p = subprocess.run([sys.executable, "-m", "omni_rl.cli", "filter", *overrides, "filter.score=reward",
                        "filter.band_preset=keep_all", "logging.progress=false", f"run.output_dir={out}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return json.loads((out / "report.json").read_text())
