"""The one reader of dataset files: records in file order from JSON / JSONL / CSV / TSV / Parquet files and
directories written by `datasets.Dataset.save_to_disk`.

`iter_records(src)` yields every record of a JSON array file, a JSONL file, a CSV / TSV file (a header line, then
one record per row; every cell is a string, an empty cell is null), a Parquet file or a saved dataset directory (a
`DatasetDict` must have a `train` split or exactly one), in file order, each with its 0-based `index` and, for JSONL
and CSV, its 1-based `line`. A row that cannot be read (a malformed JSONL line, a line that is not UTF-8, a CSV row
with the wrong number of cells) is a record too, with `error` set, so the caller rejects it with its line and counts
it; only a source that cannot be read at all raises (FileNotFoundError / ValueError naming the file).
`source_columns(src)` names the columns of the sources that have a schema (CSV / TSV, Parquet, saved datasets).
Arrow-based sources are read in Arrow format, so `datasets.Image` / `datasets.Audio` / `datasets.Video` columns
arrive undecoded as `{"bytes", "path"}` dicts.

Two callers: `omni_rl.data.loading` (training rows -> `Sample`s, `load_samples` / `iter_samples`; `omni_rl.data.pairs`
too) and `omni_rl.environments.convert` (public datasets -> training rows).

Imports at module level are stdlib only; `datasets` and pyarrow are imported where they are used.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
LIST_KEYS = ("questions", "data", "annotations")  # a .json object holding its records in one of these lists


@dataclass
class SourceRecord:
    """One record of the source: `index` counts records from 0 in file order, `line` is the 1-based JSONL / CSV line
    (None for JSON arrays and Arrow sources), `error` says why the line could not be read, `error_code` is the
    reject code it is counted under."""

    index: int
    record: Any
    line: int | None = None
    error: str | None = None
    error_code: str = "malformed_json"


def iter_records(src: Path) -> Iterator[SourceRecord]:
    """Every record of `src` (module docstring). Raises only for a source it cannot read at all."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"source not found: {src}")
    if src.is_dir():
        yield from _iter_arrow(_load_dataset_dir(src))
    elif src.suffix.lower() == ".parquet":
        import datasets

        yield from _iter_arrow(datasets.Dataset.from_parquet(str(src)))
    elif src.suffix.lower() in JSONL_SUFFIXES:
        yield from _iter_jsonl(src)
    elif src.suffix.lower() == ".json":
        yield from _iter_json(src)
    elif src.suffix.lower() in CSV_DELIMITERS:
        yield from _iter_csv(src, CSV_DELIMITERS[src.suffix.lower()])
    else:
        raise ValueError(f"unsupported source format {src.suffix!r} for {src}: expected .json (an array of records, "
                         f"or one record per line), .jsonl / .ndjson, .csv / .tsv (a header line), .parquet, or a "
                         f"directory written by datasets.Dataset.save_to_disk")


def source_columns(src: Path) -> list[str] | None:
    """The column names of a source with a schema (CSV / TSV header, Parquet, saved dataset); None for JSON."""
    src = Path(src)
    if src.is_dir():
        return list(_load_dataset_dir(src).column_names)
    if src.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(str(src)).names)
    if src.suffix.lower() in CSV_DELIMITERS:
        with open(src, newline="", encoding="utf-8-sig") as f:
            return _csv_header(csv.reader(f, delimiter=CSV_DELIMITERS[src.suffix.lower()]), src)
    return None


def _csv_header(reader: Any, path: Path) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as e:
        raise ValueError(f"{path}: the header line is not valid CSV ({e})") from e
    names = [h.strip() for h in header]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if "" in names or dupes:
        raise ValueError(f"{path}: the header line needs one distinct, non-empty name per column, got {header!r:.200}")
    return names


def _iter_csv(path: Path, delimiter: str) -> Iterator[SourceRecord]:
    """A CSV / TSV file: the first line names the columns, each further row is one record (a quoted cell may span
    lines; `line` is where the row starts). Blank lines are not records."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = _csv_header(reader, path)
            index, start = 0, reader.line_num + 1
            while True:
                try:
                    cells: list[str] | None = next(reader)
                    error = None if not cells or len(cells) == len(header) else \
                        f"{len(cells)} cells for the {len(header)} columns of the header"
                except StopIteration:
                    return
                except csv.Error as e:
                    if reader.line_num < start:  # the reader did not move on: nothing more can be read
                        raise ValueError(f"{path} line {start}: not valid CSV ({e})") from e
                    cells, error = None, f"not valid CSV ({e})"
                line, start = start, reader.line_num + 1
                if cells == []:
                    continue
                if error is not None:
                    yield SourceRecord(index=index, record=cells, line=line, error=error, error_code="malformed_csv")
                else:
                    assert cells is not None
                    yield SourceRecord(index=index, record={h: (c if c != "" else None) for h, c in zip(header, cells)},
                                       line=line)
                index += 1
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); re-encode it as UTF-8") \
                from None


def _load_dataset_dir(path: Path) -> Any:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if "train" in ds:
            return ds["train"]
        if len(ds) == 1:
            return next(iter(ds.values()))
        raise ValueError(f"{path} holds a DatasetDict with splits {list(ds)}; pass one split's directory "
                         f"(e.g. {path / next(iter(ds))})")
    return ds


def _iter_arrow(ds: Any) -> Iterator[SourceRecord]:
    index = 0
    for table in ds.with_format("arrow").iter(batch_size=256):
        for record in table.to_pylist():
            yield SourceRecord(index=index, record=record)
            index += 1


def _iter_jsonl(path: Path) -> Iterator[SourceRecord]:
    index = 0
    with open(path, "rb") as f:
        for line_no, raw_bytes in enumerate(f, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as e:
                yield SourceRecord(index=index, record=raw_bytes.decode("utf-8", errors="replace").rstrip("\r\n"),
                                   line=line_no, error=f"not valid UTF-8 ({e.reason} at byte {e.start})")
                index += 1
                continue
            raw = raw.lstrip("\ufeff") if line_no == 1 else raw
            if not raw.strip():
                continue  # blank lines are not records
            try:
                yield SourceRecord(index=index, record=json.loads(raw), line=line_no)
            except (json.JSONDecodeError, RecursionError) as e:
                yield SourceRecord(index=index, record=raw.rstrip("\r\n"), line=line_no, error=str(e))
            index += 1


def _iter_json(path: Path) -> Iterator[SourceRecord]:
    """A `.json` file: a JSON array of records; an object holding them under `questions` (CLEVR), `data` or
    `annotations`; any other single object is one record; a file that is not one JSON value is read as JSONL."""
    text = path.read_text(encoding="utf-8-sig")
    head = text.lstrip()[:1]
    if head == "[":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} starts like a JSON array but is not valid JSON ({e}); fix the file or write "
                             f"one record per line (JSONL)") from e
        for i, record in enumerate(records):
            yield SourceRecord(index=i, record=record)
        return
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        yield from _iter_jsonl(path)
        return
    if isinstance(whole, dict):
        for key in LIST_KEYS:
            if isinstance(whole.get(key), list):
                for i, record in enumerate(whole[key]):
                    yield SourceRecord(index=i, record=record)
                return
    yield SourceRecord(index=0, record=whole, line=1 if "\n" not in text.strip() else None)
