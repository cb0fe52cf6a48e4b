"""Preference pairs for MPO: rows (JSONL lines, read by `omni_rl.data.records` like dataset rows) of `{"id", "prompt": <a dataset row>, "chosen": str, "rejected": str, ...}`
(what `omni-rl build-preferences` writes to pairs.jsonl; other fields are carried along and ignored).

The prompt row is validated exactly like a dataset row (`omni_rl.data.loading`), its media paths relative to the
pairs file's directory. Every line is either a usable `Pair` or a reject with a reason, and
`rows_in == usable + rejected` (asserted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .loading import _iter_rows, _Reject, _validate, media_problem
from .types import Sample


@dataclass
class Pair:
    id: str
    sample: Sample  # the prompt
    chosen: str
    rejected: str


@dataclass
class PairsResult:
    pairs: list[Pair]
    rejects: list[dict[str, Any]]
    counts: dict[str, int]


def load_pairs(path: str | os.PathLike, *, known_verifiers: Callable[[str], bool] | None = None,
               rejects_path: str | os.PathLike | None = None, check_media: bool = True) -> PairsResult:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    if known_verifiers is None:
        from omni_rl.verifiers import verifier_exists as known_verifiers
    base_dir = path.parent.resolve()
    media_cache: dict[tuple[str, str], str | None] = {}
    pairs: list[Pair] = []
    rejects: list[dict[str, Any]] = []
    seen: set[str] = set()
    rows_in = 0
    for line_no, index, row, parse_error in _iter_rows(path):
        rows_in += 1
        try:
            if parse_error is not None:
                raise _Reject(f"malformed_json: {parse_error}")
            if not isinstance(row, dict):
                raise _Reject(f"bad_type:row: expected a JSON object, got {type(row).__name__}")
            for name in ("prompt", "chosen", "rejected"):
                if name not in row:
                    raise _Reject(f"missing_field:{name}")
            for name in ("chosen", "rejected"):
                if not isinstance(row[name], str) or not row[name].strip():
                    raise _Reject(f"bad_type:{name}: expected a non-empty string")
            if row["chosen"].strip() == row["rejected"].strip():
                raise _Reject("bad_type:rejected: identical to chosen")
            pid = str(row.get("id", f"line{line_no}" if line_no is not None else f"row{index}"))
            if pid in seen:
                raise _Reject(f"duplicate_id: {pid!r} already used by an earlier pair")
            try:
                sample = _validate(row["prompt"], base_dir=base_dir, seen_ids=set(), known_verifiers=known_verifiers,
                                   check_media=check_media, media_cache=media_cache)
            except _Reject as r:
                raise _Reject(f"prompt_{r.reason}") from None
            seen.add(pid)
        except _Reject as r:
            rejects.append({"line": line_no, "id": row.get("id") if isinstance(row, dict) else None,
                            "reason": r.reason, "row": row})
            continue
        pairs.append(Pair(id=pid, sample=sample, chosen=row["chosen"], rejected=row["rejected"]))
    counts = {"rows_in": rows_in, "usable": len(pairs), "rejected": len(rejects)}
    assert counts["rows_in"] == counts["usable"] + counts["rejected"], counts
    if rejects_path is not None:
        with open(rejects_path, "w", encoding="utf-8") as f:
            for r in rejects:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    return PairsResult(pairs=pairs, rejects=rejects, counts=counts)


__all__ = ["Pair", "PairsResult", "load_pairs"]
