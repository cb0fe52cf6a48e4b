"""Where built artefacts live: the cache root (`$OMNI_RL_CACHE`) and the embedded synthetic suite of a config."""

from __future__ import annotations

from pathlib import Path

from omni_rl.config.schema import OmniRLConfig
from omni_rl.paths import cache_root

# The model and data modules are imported inside the functions: a stage builds its policy and data in a background
# thread while Ray starts (`omni_rl.controller.rl`), so their import time overlaps Ray's start.


def cache_dir() -> Path:
    return cache_root()


def suite_path(cfg: OmniRLConfig, *, held_out: bool = False) -> Path:
    """The embedded synthetic suite for the stage's tasks (generated once, cached by its settings). `held_out`: the
    evaluation suite, `data.eval_tasks` (default: the same tasks) drawn with seed `data.seed + 1` (other images,
    other answers' order); a stage can so watch tasks it does not train on (a text stage's image and audio reward)."""
    from omni_rl.data.synthetic import generate_suite

    tasks = sorted(cfg.data.eval_tasks or cfg.data.synthetic_tasks) if held_out else sorted(cfg.data.synthetic_tasks)
    n, seed = (cfg.data.eval_per_task, cfg.data.seed + 1) if held_out else (cfg.data.synthetic_per_task, cfg.data.seed)
    name = f"{'-'.join(tasks) or 'all'}-n{n}-seed{seed}"
    return generate_suite(cache_dir() / "synthetic" / name, tasks=tasks or None, n_per_task=n, seed=seed)
