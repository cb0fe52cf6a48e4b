"""Input rows written back out by the jobs (kept.jsonl, pairs.jsonl): the row as read, media made valid from the
output file's directory."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from omni_rl.data.loading import Row
from omni_rl.data.types import MEDIA_KINDS


def portable_row(row: Row, out_dir: Path) -> dict[str, Any]:
    """A deep copy of the raw row with each media path rewritten to be valid from `out_dir` (`portable_path`; the
    validated sample holds the absolute paths, in the same message / part positions). Nothing else changes."""
    assert row.sample is not None and isinstance(row.raw, dict)
    out = copy.deepcopy(row.raw)
    for m_raw, m_abs in zip(out.get("messages") or [], row.sample.messages):
        parts_raw, parts_abs = m_raw.get("content"), m_abs.get("content")
        if not isinstance(parts_raw, list):
            continue
        for p_raw, p_abs in zip(parts_raw, parts_abs):
            kind = p_raw.get("type") if isinstance(p_raw, dict) else None
            if kind in MEDIA_KINDS and kind in p_abs:
                p_raw[kind] = portable_path(p_abs[kind], out_dir)
    return out


def portable_path(media: str, out_dir: Path) -> str:
    """`media` relative to `out_dir` when they share a folder below the filesystem root (the pair can be moved
    together), else the absolute path."""
    out_dir = Path(out_dir).resolve()
    if os.path.commonpath([str(out_dir), media]) == os.path.sep:
        return media
    return os.path.relpath(media, out_dir)
