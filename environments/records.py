"""Public dataset files record by record, and their media references turned into files our loader reads.

Reading is `omni_rl.data.records` (the one reader of JSON / JSONL / CSV / TSV / Parquet / saved-dataset sources,
shared with `omni_rl.data.loading`); `iter_records`, `source_columns` and `SourceRecord` are re-exported here for the
converter.

`MediaResolver` maps one media value of a record (a path string, an HF dict with `path` / `bytes`, or an audio dict
with `array` + `sampling_rate`) to an existing local file: relative paths resolve against the media root, embedded
bytes and arrays are written under the media folder next to the output file. It checks each file once (existence,
then a full decode with `omni_rl.data.media.probe_media` unless `check_media` is off) and writes the path into the
row relative to the output file's folder when the two share a folder below the filesystem root, else absolute -- the
way `omni_rl.data.loading` resolves it back.

Imports at module level are stdlib and `omni_rl.data.records` only; `datasets`, numpy, PIL and soundfile are imported
where they are used.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.data.records import SourceRecord, iter_records, source_columns
from omni_rl.data.types import MEDIA_KINDS

__all__ = ["MEDIA_KINDS", "MediaResolver", "Reject", "SourceRecord", "iter_records", "portable_path",
           "source_columns", "summarize"]


class Reject(Exception):
    """A record the adapter cannot map. `reason` is `code:detail`; the code (the part before the first `:`) is
    counted."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def summarize(value: Any) -> Any:
    """`value` with bytes and long numeric lists (embedded media) replaced by a short description, so a reject
    record stays small and is valid JSON."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): summarize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > 64 and all(isinstance(v, (int, float)) for v in value[:64]):
            return f"<list of {len(value)} numbers>"
        return [summarize(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays / scalars
        return summarize(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def portable_path(media: Path, out_dir: Path) -> str:
    """`media` (absolute) relative to `out_dir` when they share a folder below the filesystem root, else absolute:
    the loader resolves a relative path against the directory of the rows file."""
    out_dir = Path(os.path.abspath(out_dir)).resolve()
    if os.path.commonpath([str(out_dir), str(media)]) == os.path.sep:
        return str(media)
    return os.path.relpath(media, out_dir)


@dataclass
class MediaResolver:
    """Media of the records of one conversion (module docstring).

    out_path: the rows file being written; embedded media go to `<out folder>/<out stem>_media/`.
    media_root: the folder relative media paths of the source resolve against.
    check_media: decode every file once (`probe_media`); False checks only that it exists.
    """

    out_path: Path
    media_root: Path
    check_media: bool = True
    _checked: dict[tuple[str, str], str | None] = field(default_factory=dict)
    _sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def media_dir(self) -> Path:
        return self.out_path.parent / f"{self.out_path.stem}_media"

    def file(self, value: Any, kind: str, *, field_name: str, name: str) -> Path:
        """The absolute path of an existing, decodable local file holding `value`'s media. `name` (no suffix) names
        the file written for embedded bytes or arrays. Raises `Reject` when that is impossible."""
        if isinstance(value, str):
            path = self._local(value, field_name, kind)
        elif isinstance(value, dict):
            if kind == "audio" and value.get("array") is not None:
                path = self._write_array(value, field_name, name)
            elif value.get("bytes") is not None:
                path = self._write_bytes(value["bytes"], value.get("path"), kind, field_name, name)
            elif isinstance(value.get("path"), str) and value["path"].strip():
                path = self._local(value["path"], field_name, kind)
            else:
                keys = "path, bytes" + (" or array + sampling_rate" if kind == "audio" else "")
                raise Reject(f"bad_field:{field_name}: the {kind} object has none of {keys}")
        else:
            raise Reject(f"bad_field:{field_name}: expected a file path or a {{path, bytes}} object, got "
                         f"{type(value).__name__}")
        self._check(path, kind)
        return path

    def ref(self, path: Path) -> str:
        """How `path` is written into a row of the output file."""
        return portable_path(path, self.out_path.parent)

    def image_size(self, path: Path) -> tuple[int, int]:
        """(width, height) of an image file, read from its header."""
        key = str(path)
        if key not in self._sizes:
            from PIL import Image

            try:
                with Image.open(path) as im:
                    self._sizes[key] = (int(im.width), int(im.height))
            except Exception as e:  # noqa: BLE001 -- any decoder error is this record's problem
                raise Reject(f"corrupt_media:{path}: {type(e).__name__}: {e}") from None
        return self._sizes[key]

    # ------------------------------------------------------------------------------------------------- internals
    def _local(self, written: str, field_name: str, kind: str) -> Path:
        s = written.strip()
        if not s:
            raise Reject(f"bad_field:{field_name}: empty {kind} path")
        if s.startswith("file://"):
            s = s[len("file://"):]
        elif "://" in s or s.startswith("data:"):
            raise Reject(f"bad_field:{field_name}: {s[:60]!r} is not a local path (download the {kind} files and "
                         f"point --media-root at them)")
        p = Path(s).expanduser()
        return Path(os.path.abspath(p if p.is_absolute() else self.media_root / p))

    def _check(self, path: Path, kind: str) -> None:
        key = (str(path), kind)
        if key not in self._checked:
            self._checked[key] = self._probe(path, kind)
        problem = self._checked[key]
        if problem == "missing":
            raise Reject(f"missing_media:{path}")
        if problem is not None:
            raise Reject(f"corrupt_media:{path}: {problem}")

    def _probe(self, path: Path, kind: str) -> str | None:
        if not path.is_file():
            return "missing"
        if not self.check_media:
            return None
        from omni_rl.data.loading import media_problem

        return media_problem(path, kind)

    def _target(self, name: str, suffix: str) -> Path:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        return Path(os.path.abspath(self.media_dir / f"{name}{suffix}"))

    def _write_bytes(self, data: Any, path_hint: Any, kind: str, field_name: str, name: str) -> Path:
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise Reject(f"bad_field:{field_name}: 'bytes' of the {kind} object is empty or not bytes")
        suffix = Path(path_hint).suffix.lower() if isinstance(path_hint, str) else ""
        if not suffix:
            suffix = _sniff_suffix(bytes(data), kind)
        if not suffix:
            raise Reject(f"bad_field:{field_name}: cannot tell the file format of the embedded {kind} bytes (give "
                         f"'path' a file name with a suffix)")
        target = self._target(name, suffix)
        target.write_bytes(bytes(data))
        return target

    def _write_array(self, value: dict[str, Any], field_name: str, name: str) -> Path:
        import numpy as np
        import soundfile as sf

        sr = value.get("sampling_rate")
        if isinstance(sr, bool) or not isinstance(sr, (int, float)) or sr <= 0 or float(sr) != int(sr):
            raise Reject(f"bad_field:{field_name}: an audio array needs a positive integer 'sampling_rate', got "
                         f"{sr!r:.40}")
        try:
            wav = np.asarray(value["array"], dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise Reject(f"bad_field:{field_name}: 'array' is not a numeric array ({e})") from None
        if wav.ndim == 2 and wav.shape[0] < wav.shape[1]:
            wav = wav.T  # channels first -> frames first, as soundfile writes them
        if wav.ndim not in (1, 2) or wav.shape[0] == 0:
            raise Reject(f"bad_field:{field_name}: 'array' must hold samples (1-D, or 2-D with channels), got shape "
                         f"{list(wav.shape)}")
        if not np.isfinite(wav).all():
            raise Reject(f"bad_field:{field_name}: 'array' contains NaN or inf")
        peak = float(np.abs(wav).max())
        if peak > 1.0:
            raise Reject(f"bad_field:{field_name}: samples reach {peak:.4g}; expected float PCM in [-1, 1]")
        target = self._target(name, ".wav")
        sf.write(str(target), wav, int(sr), subtype="PCM_16", format="WAV")
        return target


def _sniff_suffix(data: bytes, kind: str) -> str:
    """File suffix of embedded media bytes without a file name ('' when unknown)."""
    if kind == "image":
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = (im.format or "").lower()
        except Exception:  # noqa: BLE001
            return ""
        return {"jpeg": ".jpg", "": ""}.get(fmt, f".{fmt}")
    if kind == "audio":
        import soundfile as sf

        try:
            fmt = sf.info(io.BytesIO(data)).format.lower()
        except Exception:  # noqa: BLE001
            return ""
        return f".{fmt}"
    if data[4:8] == b"ftyp":
        return ".mp4"
    if data[:4] == b"\x1aE\xdf\xa3":
        return ".webm" if b"webm" in data[:64] else ".mkv"
    return ""
