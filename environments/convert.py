"""`omni-rl convert ADAPTER SRC OUT`: run one adapter (`adapters.ADAPTERS`) over every record of a public dataset file.

ADAPTER may also name a preset (`mapping.PRESETS`: an adapter plus the column mapping of one published layout); a
`mapping.Mapping` given on top says which columns hold what where the source names them otherwise, and rewrites each
record before the adapter reads it.

Every source record ends in exactly one place: a line of OUT (a row for `omni_rl.data.loading.load_samples`, or an
MPO pair for `omni_rl.data.pairs.load_pairs`), or a line of the rejects file
`{"index", "line", "id", "reason", "record"}` (`index`: the record's 0-based position in the source; `line`: its JSONL
line, else null; `record`: the record with embedded bytes / arrays summarised). `records_in == converted + rejected`
is asserted. A bad record never stops the conversion; only a source that cannot be read at all raises.

OUT and the rejects file are written to temporary files and renamed at the end. Embedded media (HF image / audio
bytes, audio arrays) are written to `<OUT folder>/<OUT stem>_media/`, named by record index.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adapters import BBOX_FORMATS, Adapter, AdapterFn, Context
from .mapping import Mapping, MediaIndex, resolve
from .records import MediaResolver, Reject, iter_records, source_columns, summarize

log = logging.getLogger(__name__)

OUT_SUFFIXES = (".jsonl", ".json", ".ndjson")  # what the loader reads line by line


class UnknownAdapterError(KeyError):
    """No adapter under that name; `str()` lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class ConvertResult:
    out: Path
    rejects_path: Path
    counts: dict[str, int]  # records_in, converted, rejected, then one count per reject code
    rejects: list[dict[str, Any]]  # the first MAX_KEPT_REJECTS reject records (all of them are in rejects_path)


MAX_KEPT_REJECTS = 100


def get_adapter(name: str) -> tuple[Adapter, Mapping]:
    """The adapter an adapter or preset name stands for, and the preset's mapping (empty for an adapter)."""
    try:
        return resolve(name)
    except KeyError as e:
        raise UnknownAdapterError(e.args[0]) from None


def default_rejects_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.rejects.jsonl")


def convert(adapter: str, src: str | os.PathLike, out: str | os.PathLike, *, source: str | None = None,
            media_root: str | os.PathLike | None = None, rejects_path: str | os.PathLike | None = None,
            check_media: bool = True, bbox_format: str | None = None, mapping: Mapping | None = None) -> ConvertResult:
    """Convert every record of `src` with adapter (or preset) `adapter` into `out` (module docstring).

    source: the `source` name written into every row (default: the adapter's or preset's name).
    media_root: folder that relative media paths of the source resolve against (default: the folder of `src`, or
        `src` itself for a saved dataset directory).
    rejects_path: default `<out stem>.rejects.jsonl` next to `out`.
    check_media: decode every media file once and reject records whose media do not decode (False: only check that
        the files exist).
    bbox_format: `screenspot` only: how a list of 4 numbers is read (`auto`, `xyxy`, `xywh`; default: the mapping's,
        else `auto`).
    mapping: which columns hold what (`mapping.Mapping`), over the preset's mapping; raises ValueError naming the
        roles or columns that exist when it names others.
    """
    ad, preset = get_adapter(adapter)
    m = (mapping or Mapping()).over(preset)
    bbox_format = bbox_format or m.bbox_format or "auto"
    src, out = Path(src), Path(out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise ValueError(f"OUT must be a JSONL file ({', '.join(OUT_SUFFIXES)}), got {out}")
    if not src.exists():
        raise FileNotFoundError(f"source not found: {src}")
    if out.exists() and out.resolve() == src.resolve():
        raise ValueError(f"OUT {out} is the source itself; write the rows to another file")
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(f"bbox_format must be one of {', '.join(BBOX_FORMATS)}, got {bbox_format!r}")
    m.check(ad, source_columns(src) if m.fields else None)
    source = adapter if source is None else source
    if not source.strip():
        raise ValueError("the source name must be a non-empty string")
    root = Path(media_root) if media_root is not None else (src if src.is_dir() else src.parent)
    if not root.is_dir():
        raise FileNotFoundError(f"media root {root} is not a directory")
    rejects_path = Path(rejects_path) if rejects_path is not None else default_rejects_path(out)
    if os.path.abspath(rejects_path) == os.path.abspath(out):
        raise ValueError(f"the rejects file must differ from OUT {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    ctx = Context(source=source, media=MediaResolver(out_path=out, media_root=Path(os.path.abspath(root)),
                                                     check_media=check_media), bbox_format=bbox_format,
                  answer_index=m.answer_index)
    fn = _mapped(ad, m, MediaIndex(ctx.media.media_root))

    counts: dict[str, int] = {"records_in": 0, "converted": 0, "rejected": 0}
    kept: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    tmp_out, tmp_rej = out.with_name(out.name + ".tmp"), rejects_path.with_name(rejects_path.name + ".tmp")
    try:
        with open(tmp_out, "w", encoding="utf-8") as fo, open(tmp_rej, "w", encoding="utf-8") as fr:
            for rec in iter_records(src):
                counts["records_in"] += 1
                try:
                    error = None if rec.error is None else f"{rec.error_code}: {rec.error}"
                    row = _convert_one(fn, rec.record, rec.index, error, ctx)
                    _check_verifier(row["prompt"] if ad.output == "pairs" else row)
                    if row["id"] in seen:
                        raise Reject(f"duplicate_id: {row['id']!r} already used by record {seen[row['id']]}")
                    seen[row["id"]] = rec.index
                except Reject as r:
                    rid = rec.record.get("id") if isinstance(rec.record, dict) else None
                    rej = {"index": rec.index, "line": rec.line, "id": summarize(rid), "reason": r.reason,
                           "record": summarize(rec.record)}
                    fr.write(json.dumps(rej, ensure_ascii=False, default=str) + "\n")
                    counts["rejected"] += 1
                    code = r.reason.split(":", 1)[0]
                    counts[code] = counts.get(code, 0) + 1
                    if len(kept) < MAX_KEPT_REJECTS:
                        kept.append(rej)
                    continue
                fo.write(json.dumps(row, ensure_ascii=False) + "\n")
                counts["converted"] += 1
        tmp_out.replace(out)
        tmp_rej.replace(rejects_path)
    finally:
        for t in (tmp_out, tmp_rej):
            t.unlink(missing_ok=True)
    assert counts["records_in"] == counts["converted"] + counts["rejected"], counts
    return ConvertResult(out=out, rejects_path=rejects_path, counts=counts, rejects=kept)


def _mapped(ad: Adapter, mapping: Mapping, media: MediaIndex) -> AdapterFn:
    """The adapter's function reading records rewritten by `mapping`; its reject reasons name the mapped columns."""
    def fn(record: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
        mapped = mapping.apply(record, ad, media)
        try:
            return ad.fn(mapped, index, ctx)
        except Reject as r:
            raise Reject(mapping.explain(r.reason, ad)) from None

    return fn


def _check_verifier(row: dict[str, Any]) -> None:
    """A converted row (or a pair's prompt row) names a registered verifier; anything else is rejected, and checking
    imports nothing (`omni_rl.verifiers.verifier_exists`): a verifier field carried over from the source is data."""
    from omni_rl.verifiers import verifier_exists

    name = row.get("verifier")
    if not verifier_exists(name):
        raise Reject(f"unknown_verifier:{name}")


def _convert_one(fn: Any, record: Any, index: int, error: str | None, ctx: Context) -> dict[str, Any]:
    """`error`: the reject reason of a source line that could not be read (`malformed_json: ...`)."""
    if error is not None:
        raise Reject(error)
    if not isinstance(record, dict):
        raise Reject(f"bad_record: expected a JSON object, got {type(record).__name__}")
    try:
        return fn(record, index, ctx)
    except Reject:
        raise
    except Exception as e:  # noqa: BLE001 -- a surprise in one record must not stop the conversion
        log.exception("unexpected error converting record %d", index)
        raise Reject(f"bad_record: unexpected {type(e).__name__}: {e}") from None


def summary(adapter: str, res: ConvertResult) -> str:
    """What `omni-rl convert` prints: the accounting line, where the files went, the first rejects."""
    c = res.counts
    codes = {k: v for k, v in c.items() if k not in ("records_in", "converted", "rejected")}
    by_code = f" ({', '.join(f'{k} {v}' for k, v in sorted(codes.items()))})" if codes else ""
    what = "pairs (data.path of stage=mpo)" if get_adapter(adapter)[0].output == "pairs" else "rows"
    lines = [f"records_in {c['records_in']} = converted {c['converted']} + rejected {c['rejected']}{by_code}",
             f"{what}: {res.out}", f"rejects: {res.rejects_path}"]
    for r in res.rejects[:5]:
        where = f" (line {r['line']})" if r["line"] is not None else ""
        lines.append(f"  rejected record {r['index']}{where}: {r['reason']}")
    if c["rejected"] > 5:
        lines.append(f"  ... {c['rejected'] - 5} more in {res.rejects_path}")
    return "\n".join(lines)
