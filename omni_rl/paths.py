"""Where omni-rl keeps what it builds."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$OMNI_RL_CACHE` (default `~/.cache/omni_rl`): the root of every cached artefact (tiny models under `models/`,
    converted checkpoints under `pretrained/`, synthetic suites under `synthetic/`, preference pairs under `pairs/`)."""
    return Path(os.environ.get("OMNI_RL_CACHE", Path.home() / ".cache" / "omni_rl"))
