"""A run's directory, console, progress bar and metrics logger (driver side)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from omni_rl.config.schema import OmniRLConfig
from omni_rl.logging.metrics import MetricsLogger


def metric_text(m: dict[str, Any], key: str, fmt: str = ".3f") -> str:
    """`m[key]` formatted with `fmt` for a step's summary line, "-" when the step has no number under `key`."""
    v = m.get(key)
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


@dataclass
class Run:
    cfg: OmniRLConfig
    dir: Path
    console: Console = field(default_factory=lambda: Console(highlight=False))
    logger: "LazyLogger" = None  # type: ignore[assignment]

    @classmethod
    def create(cls, cfg: OmniRLConfig) -> "Run":
        run_dir = Path(cfg.run.output_dir).resolve()
        if run_dir.exists() and not cfg.run.resume and (run_dir / "checkpoints").exists():
            raise FileExistsError(
                f"run dir {run_dir} already holds checkpoints; pass run.resume=true to continue it, or choose "
                f"another run.output_dir=... (or delete the directory) to start over"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.run.resume:
            (run_dir / "samples.jsonl").unlink(missing_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
        run = cls(cfg=cfg, dir=run_dir)
        run.logger = LazyLogger(run)
        return run

    @contextlib.contextmanager
    def progress(self, *, total: int, start: int) -> Iterator["_Advance"]:
        if not self.cfg.logging.progress:
            yield _Advance(None, None)
            return
        bar = Progress(TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False)
        with bar:
            task = bar.add_task(self.cfg.run.name, total=total, completed=start)
            yield _Advance(bar, task)

    def log_samples(self, step: int, samples: list[dict[str, Any]]) -> None:
        """A few (prompt id, answer, response, reward) per step in samples.jsonl: what the policy actually says."""
        with (self.dir / "samples.jsonl").open("a") as f:
            for s in samples:
                f.write(json.dumps({"step": step, **s}, default=str) + "\n")

    def summary_line(self, step: int, m: dict[str, Any]) -> str:
        def g(key: str, fmt: str = ".3f") -> str:
            return metric_text(m, key, fmt)

        return (f"step {step:>3} | reward {g('reward/mean')} (out {g('reward/outcome', '.2f')} fmt "
                f"{g('reward/format', '.2f')}) | loss {g('train/loss', '.4f')} "
                f"clip {g('train/clip_frac', '.2f')} mismatch {g('train/logprob_abs_diff_mean', '.1e')} | "
                f"gen {g('time/generate', '.1f')}s verify {g('time/verify', '.1f')}s train {g('time/train', '.1f')}s "
                f"refit {g('time/refit', '.2f')}s" + (f" | eval {g('eval/mean')}" if "eval/mean" in m else ""))


@dataclass
class _Advance:
    bar: Progress | None
    task: Any

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)


class LazyLogger:
    """Opens the metrics sinks once the resume step is known (so the jsonl is truncated to the checkpoint)."""

    def __init__(self, run: Run):
        self.run = run
        self._logger: MetricsLogger | None = None

    def open(self, *, resume_step: int | None) -> None:
        cfg = self.run.cfg
        self._logger = MetricsLogger(self.run.dir, config=asdict(cfg), wandb_mode=cfg.logging.wandb_mode,
                                     wandb_project=cfg.logging.wandb_project, run_name=cfg.run.name,
                                     resume_step=resume_step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        assert self._logger is not None, "open() first"
        self._logger.log(step, metrics)

    def close(self) -> None:
        if self._logger is not None:
            self._logger.close()


def build_run(cfg: OmniRLConfig) -> Run:
    return Run.create(cfg)
