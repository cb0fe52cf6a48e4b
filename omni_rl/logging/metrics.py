"""Metric sinks: `metrics.jsonl` in the run dir (always) and wandb (offline by default).

Metric names are flat, slash-separated: `reward/mean`, `reward/source/<source>`, `reward/verifier/<name>`,
`loss/clip_frac_low`, `logprob/mismatch_mean`, `time/generate`, `media/physical_bytes`, ... One line per step:
`{"step": k, ...}`. On resume the file is truncated to the last checkpointed step so the curve has no duplicates.

A resumed run continues the same wandb run: its id is kept in the run dir (`wandb_run_id`) and passed back with
`resume="allow"` (offline, each session writes its own `wandb/offline-run-*` dir under that id, and `wandb sync`
joins them). wandb ignores a step below the last one it holds, so the steps an interrupted session logged after its
last checkpoint keep that session's values in wandb; `metrics.jsonl` holds the values of the session that finished
them.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

WANDB_RUN_ID = "wandb_run_id"  # in the run dir: the wandb run a resumed run continues


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsLogger:
    def __init__(self, run_dir: Path, *, config: dict[str, Any], wandb_mode: str, wandb_project: str,
                 run_name: str, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            truncate_metrics(self.path, resume_step)
        elif self.path.exists():
            self.path.unlink()
        self._wandb = None
        if wandb_mode != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb = wandb.init(
                project=wandb_project, name=run_name, dir=str(run_dir), mode=wandb_mode, config=config,
                id=wandb_run_id(Path(run_dir), resume=resume_step is not None),
                resume="allow" if resume_step is not None else None, reinit="finish_previous",
            )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if v is not None and k != "step"}, step=step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def wandb_run_id(run_dir: Path, *, resume: bool) -> str:
    """The id of the run dir's wandb run: the stored one when resuming (if the run dir has one), else a new one,
    stored."""
    path = run_dir / WANDB_RUN_ID
    if resume and path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    run_id = secrets.token_hex(6)  # wandb run ids: letters and digits
    path.write_text(run_id + "\n")
    return run_id


def read_metrics(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep rows with step <= last_step (the steps a checkpoint covers)."""
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
