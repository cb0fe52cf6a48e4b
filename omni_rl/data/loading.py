"""Load and validate dataset rows into `Sample`s; every row is either usable or rejected with a reason.

Formats: JSONL (`.jsonl` / `.ndjson`, and `.json` holding one row per line or a JSON array of rows), Parquet
(`.parquet`) and a dataset directory saved with `Dataset.save_to_disk` (a `DatasetDict` must have a `train` split or
exactly one), all read by `omni_rl.data.records.iter_records` (the converter's reader too): a malformed JSONL line is
rejected with its line number, a Parquet / dataset / JSON-array row carries its 0-based index. CSV / TSV are not
training rows (their cells are strings, a row needs nested messages): `omni-rl convert` maps them. Row schema and
reject reasons: see `docs/data.md`.

`load_samples` never raises because of one bad row (only for a path it cannot read at all). The counts satisfy
`rows_in == usable + rejected` (asserted) and `rejected == sum of the per-reason counts`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .media import MediaError, probe_media
from .records import CSV_DELIMITERS, JSONL_SUFFIXES, SourceRecord, iter_records
from .types import MEDIA_KINDS, MODALITIES, Sample

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("id", "messages", "verifier", "answer")
OPTIONAL_FIELDS = ("source", "verifier_kwargs", "modality", "unanswerable", "pass_rate")
REJECT_CODES = (
    "malformed_json",
    "missing_field",
    "bad_type",
    "duplicate_id",
    "unknown_verifier",
    "missing_media",
    "corrupt_media",
)


@dataclass
class LoadResult:
    samples: list[Sample]
    rejects: list[dict[str, Any]]  # {"line": int|None, "id": str|None, "reason": str, "row": raw text or dict}
    counts: dict[str, int] = field(default_factory=dict)  # rows_in, usable, rejected, one key per REJECT_CODES


class _Reject(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Row:
    """One input row, in file order: `pos` counts rows from 0 (blank JSONL lines are not rows), `raw` is the row as
    read (a dict, or the line's text when it is not valid JSON); exactly one of `sample` / `reject` is set."""

    pos: int
    raw: Any
    line: int | None = None  # JSONL line number (1-based)
    index: int | None = None  # row index in a Parquet file / saved dataset
    sample: Sample | None = None
    reject: dict[str, Any] | None = None  # {"line", "id", "reason", "row"[, "index"]}


def iter_samples(
    path: str | os.PathLike,
    *,
    known_verifiers: Callable[[str], bool] | None = None,
    check_media: bool = True,
    media_cache_size: int = 4096,
) -> Iterator[Row]:
    """Stream the rows of `path` one at a time, each validated into a `Sample` or rejected with a reason (what
    `load_samples` collects). Memory stays flat apart from the set of ids seen (duplicate detection) and a bounded
    cache of media checks (`media_cache_size` entries)."""
    path = Path(path)
    if known_verifiers is None:
        from omni_rl.verifiers import verifier_exists as known_verifiers
    base_dir = (path if path.is_dir() else path.parent).resolve()
    seen_ids: set[str] = set()
    media_cache: dict[tuple[str, str], str | None] = {}  # (abs path, kind) -> None (ok) or reject reason suffix

    for pos, (line_no, index, row, parse_error) in enumerate(_iter_rows(path)):
        row_id = None
        if isinstance(row, dict) and isinstance(row.get("id"), (str, int)) and not isinstance(row.get("id"), bool):
            row_id = str(row["id"])
        original = row
        try:
            if parse_error is not None:
                raise _Reject(f"malformed_json: {parse_error}")
            sample = _validate(row, base_dir=base_dir, seen_ids=seen_ids, known_verifiers=known_verifiers,
                               check_media=check_media, media_cache=media_cache)
        except Exception as e:  # noqa: BLE001 -- a bug or surprise in one row must not sink the whole load
            if isinstance(e, _Reject):
                reason = e.reason
            else:
                log.exception("unexpected error validating row (line %s, id %s)", line_no, row_id)
                reason = f"bad_type:row: unexpected {type(e).__name__}: {e}"
            rej: dict[str, Any] = {"line": line_no, "id": row_id, "reason": reason, "row": original}
            if index is not None:
                rej["index"] = index
            yield Row(pos=pos, raw=original, line=line_no, index=index, reject=rej)
            continue
        if len(media_cache) > media_cache_size:
            media_cache.clear()
        yield Row(pos=pos, raw=row, line=line_no, index=index, sample=sample)


def count_rows(path: str | os.PathLike) -> int:
    """Number of rows in `path` without validating them: the rows `iter_samples` yields (blank lines are not rows)."""
    return sum(1 for _ in _iter_rows(Path(path)))


def load_samples(
    path: str | os.PathLike,
    *,
    known_verifiers: Callable[[str], bool] | None = None,
    rejects_path: str | os.PathLike | None = None,
    check_media: bool = True,
) -> LoadResult:
    """Read rows from `path` and validate them.

    known_verifiers: predicate telling whether a verifier name resolves; None -> `omni_rl.verifiers.verifier_exists`
        (pass `lambda name: True` to skip the check).
    rejects_path: where to write the rejects as JSONL (always written when given, empty when nothing was rejected).
    check_media: decode every referenced media file once (cached by path) and reject missing/corrupt ones. With
        False no media file is touched at all (paths are still resolved).
    """
    samples: list[Sample] = []
    rejects: list[dict[str, Any]] = []
    rows_in = 0
    for row in iter_samples(path, known_verifiers=known_verifiers, check_media=check_media):
        rows_in += 1
        if row.sample is not None:
            samples.append(row.sample)
        else:
            assert row.reject is not None
            rejects.append(row.reject)

    counts: dict[str, int] = {"rows_in": rows_in, "usable": len(samples), "rejected": len(rejects)}
    counts.update({code: 0 for code in REJECT_CODES})
    for r in rejects:
        counts[_code(r["reason"])] += 1
    assert counts["rows_in"] == counts["usable"] + counts["rejected"], counts
    assert counts["rejected"] == sum(counts[c] for c in REJECT_CODES), counts

    if rejects_path is not None:
        rp = Path(rejects_path)
        rp.parent.mkdir(parents=True, exist_ok=True)
        with open(rp, "w", encoding="utf-8") as f:
            for r in rejects:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    if rejects:
        by_code = {c: counts[c] for c in REJECT_CODES if counts[c]}
        log.warning("%s: %d rows in, %d usable, %d rejected %s (first: line %s id %s: %s)%s", path, rows_in,
                    len(samples), len(rejects), by_code, rejects[0]["line"], rejects[0]["id"], rejects[0]["reason"],
                    f"; rejects written to {rejects_path}" if rejects_path is not None else "")
    else:
        log.info("%s: %d rows in, all usable", path, rows_in)
    return LoadResult(samples=samples, rejects=rejects, counts=counts)


def _code(reason: str) -> str:
    return reason.split(":", 1)[0]


# ------------------------------------------------------------------------------------------------------- reading
ROW_SUFFIXES = (*JSONL_SUFFIXES, ".json", ".parquet")  # what training rows may be read from (besides a dataset dir)
RowT = tuple[int | None, int | None, Any, str | None]  # line, index, the row (its text when unreadable), read error


def _iter_rows(path: Path) -> Iterator[RowT]:
    """The rows of `path` through the one reader, `omni_rl.data.records.iter_records`: `line` for JSONL, `index`
    for the other sources; Arrow rows with their None fillers dropped (`_from_arrow`)."""
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    if not path.is_dir() and path.suffix.lower() not in ROW_SUFFIXES:
        raise ValueError(f"unsupported dataset format {path.suffix!r} for {path}: expected .jsonl / .ndjson / .json, "
                         f".parquet or a directory written by datasets.Dataset.save_to_disk"
                         + (" (CSV / TSV sources go through `omni-rl convert`)" if path.suffix.lower() in CSV_DELIMITERS
                            else ""))
    arrow = path.is_dir() or path.suffix.lower() == ".parquet"
    for rec in iter_records(path):
        yield _row(rec, arrow)


def _row(rec: SourceRecord, arrow: bool) -> RowT:
    index = None if rec.line is not None else rec.index
    if rec.error is not None:
        return rec.line, index, rec.record, rec.error
    row = _from_arrow(rec.record) if arrow and isinstance(rec.record, dict) else rec.record
    return rec.line, index, row, None


def _from_arrow(row: dict[str, Any]) -> dict[str, Any]:
    """Arrow unifies struct fields across rows: a text part comes back as {"type": "text", "text": .., "image": None,
    ...}. Drop those None fillers in message parts and verifier_kwargs; drop None-valued optional columns."""
    out = {k: v for k, v in row.items() if not (v is None and k in OPTIONAL_FIELDS)}
    msgs = out.get("messages")
    if isinstance(msgs, list):
        new = []
        for m in msgs:
            if isinstance(m, dict):
                m = {k: v for k, v in m.items() if v is not None}
                c = m.get("content")
                if isinstance(c, list):
                    m["content"] = [{k: v for k, v in p.items() if v is not None} if isinstance(p, dict) else p
                                    for p in c]
            new.append(m)
        out["messages"] = new
    vk = out.get("verifier_kwargs")
    if isinstance(vk, dict):
        out["verifier_kwargs"] = _drop_none(vk)
    return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    """Recursively drop None values from (nested) dicts: {"options": {"A": "x", "C": None}} -> {"options": {"A": "x"}}
    (Arrow pads structs of different rows to the union of their keys)."""
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


# ---------------------------------------------------------------------------------------------------- validation
def _validate(row: Any, *, base_dir: Path, seen_ids: set[str], known_verifiers: Callable[[str], bool],
              check_media: bool, media_cache: dict[tuple[str, str], str | None]) -> Sample:
    if not isinstance(row, dict):
        raise _Reject(f"bad_type:row: expected a JSON object, got {type(row).__name__}")
    for name in REQUIRED_FIELDS:
        if name not in row or (row[name] is None and not (name == "answer" and (row.get("verifier") == "format"
                                                                                or row.get("unanswerable") is True))):
            raise _Reject(f"missing_field:{name}")

    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        raise _Reject(f"bad_type:id: expected a non-empty string, got {rid!r:.80}")
    rid = str(rid)

    messages, media = _check_messages(row["messages"])

    verifier = row["verifier"]
    if not isinstance(verifier, str) or not verifier.strip():
        raise _Reject(f"bad_type:verifier: expected a non-empty string, got {verifier!r:.80}")
    source = row.get("source", "default")
    if source is None:
        source = "default"
    if not isinstance(source, str) or not source.strip():
        raise _Reject(f"bad_type:source: expected a non-empty string, got {source!r:.80}")
    vkw = row.get("verifier_kwargs")
    if vkw is None:
        vkw = {}
    if not isinstance(vkw, dict) or not all(isinstance(k, str) for k in vkw):
        raise _Reject(f"bad_type:verifier_kwargs: expected an object, got {type(vkw).__name__}")
    modality = row.get("modality")
    if modality is not None and modality not in MODALITIES:
        raise _Reject(f"bad_type:modality: {modality!r:.80} is not one of {list(MODALITIES)}")
    unanswerable = row.get("unanswerable", False)
    if unanswerable is None:
        unanswerable = False
    if not isinstance(unanswerable, bool):
        raise _Reject(f"bad_type:unanswerable: expected true/false, got {unanswerable!r:.80}")
    pass_rate = row.get("pass_rate")
    if pass_rate is not None:
        if isinstance(pass_rate, bool) or not isinstance(pass_rate, (int, float)) or not 0.0 <= pass_rate <= 1.0:
            raise _Reject(f"bad_type:pass_rate: expected a number in [0, 1], got {pass_rate!r:.80}")
        pass_rate = float(pass_rate)

    if rid in seen_ids:
        raise _Reject(f"duplicate_id: {rid!r} already used by an earlier row")
    seen_ids.add(rid)

    if not known_verifiers(verifier):
        raise _Reject(f"unknown_verifier:{verifier}")
    _check_audio_in_video(media)

    # resolve media paths (relative to the dataset file's directory) and check each file once
    kinds: set[str] = set()
    for part, kind, written in media:
        p = Path(written[len("file://"):] if written.startswith("file://") else written).expanduser()
        absolute = p if p.is_absolute() else base_dir / p
        absolute = Path(os.path.normpath(absolute))
        part[kind] = str(absolute)
        probes = [kind, "audio"] if kind == "video" and part.get("use_audio") else [kind]
        kinds.update(probes)
        for probe in probes if check_media else ():
            key = (str(absolute), probe)
            if key not in media_cache:
                media_cache[key] = media_problem(absolute, probe)
            problem = media_cache[key]
            if problem == "missing":
                raise _Reject(f"missing_media:{written}")
            if problem is not None:
                raise _Reject(f"corrupt_media:{written}: {problem}" + (" (its audio track: the part has use_audio)"
                                                                       if probe != kind else ""))

    if modality is None:
        modality = derive_modality(kinds)
    extra = {k: v for k, v in row.items() if k not in REQUIRED_FIELDS and k not in OPTIONAL_FIELDS}
    return Sample(id=rid, source=source, messages=messages, verifier=verifier, answer=row["answer"],
                  verifier_kwargs=dict(vkw), modality=modality, unanswerable=unanswerable, pass_rate=pass_rate,
                  extra=extra)


def _check_audio_in_video(media: list[tuple[dict[str, Any], str, str]]) -> None:
    """A video part with `"use_audio": true` brings its own soundtrack, interleaved with its frames in time (Qwen-Omni's
    `use_audio_in_video`, a switch for the whole prompt): then every video of the row must have it and the row may
    hold no separate audio part (vLLM pairs the k-th audio with the k-th video)."""
    videos = [part for part, kind, _ in media if kind == "video"]
    with_audio = sum(1 for part in videos if part.get("use_audio"))
    if not with_audio:
        return
    if with_audio != len(videos):
        raise _Reject("bad_type:messages: 'use_audio' must be true on every video of a row or on none "
                      f"({with_audio} of {len(videos)} videos have it)")
    if any(kind == "audio" for _, kind, _ in media):
        raise _Reject("bad_type:messages: a row whose videos use their own audio track (use_audio) cannot also have "
                      "separate audio parts")


def derive_modality(kinds: set[str] | list[str]) -> str:
    """text / image / video / audio, or omni when audio comes with image or video."""
    kinds = set(kinds)
    visual = kinds & {"image", "video"}
    if "audio" in kinds:
        return "omni" if visual else "audio"
    if "video" in kinds:
        return "video"
    if "image" in kinds:
        return "image"
    return "text"


def media_problem(path: Path, kind: str) -> str | None:
    """None when `path` decodes as `kind`; "missing" when it does not exist; else what is wrong with it."""
    try:
        probe_media(path, kind)
    except MediaError as e:
        return "missing" if e.missing else (e.detail or str(e))
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return None


def _check_messages(messages: Any) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str, str]]]:
    """Validate the chat list; return a copy of it and its media parts as (part copy, kind, path as written)."""
    if not isinstance(messages, list) or not messages:
        raise _Reject("bad_type:messages: expected a non-empty list of {role, content}")
    out: list[dict[str, Any]] = []
    media: list[tuple[dict[str, Any], str, str]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _Reject(f"bad_type:messages: {where} is not an object")
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise _Reject(f"bad_type:messages: {where}.role must be a non-empty string")
        m2 = dict(m)
        if isinstance(content, str):
            out.append(m2)
            continue
        if not isinstance(content, list):
            raise _Reject(f"bad_type:messages: {where}.content must be a string or a list of parts")
        parts = []
        for j, part in enumerate(content):
            pw = f"{where}.content[{j}]"
            if not isinstance(part, dict):
                raise _Reject(f"bad_type:messages: {pw} is not an object")
            ptype = part.get("type")
            part = dict(part)
            if ptype == "text":
                if not isinstance(part.get("text"), str):
                    raise _Reject(f"bad_type:messages: {pw} text part needs a string 'text'")
            elif ptype in MEDIA_KINDS:
                ref = part.get(ptype)
                if not isinstance(ref, str) or not ref.strip():
                    raise _Reject(f"bad_type:messages: {pw} {ptype} part needs a local file path in {ptype!r}")
                if ref.startswith(("data:", "http://", "https://")) or "://" in ref and not ref.startswith("file://"):
                    raise _Reject(f"bad_type:messages: {pw} {ptype} must be a local path (no URLs or inline data)")
                if part.get("use_audio", False) is not False and not (ptype == "video" and part["use_audio"] is True):
                    raise _Reject(f"bad_type:messages: {pw} 'use_audio' must be true/false on a video part")
                media.append((part, ptype, ref))
            else:
                raise _Reject(f"bad_type:messages: {pw} has unknown type {ptype!r:.40} "
                              f"(expected text/image/video/audio)")
            parts.append(part)
        m2["content"] = parts
        out.append(m2)
    return out, media
