"""Column mappings: which column of a public dataset holds which part of a record an adapter reads.

An adapter reads fixed field names (`Adapter.roles`: role -> the field it reads first). A `Mapping` says where each
role is in a source laid out otherwise, and rewrites every record before the adapter sees it:

- `fields`: role -> one column, several columns, or one glob pattern over the column names (`a?`, `option_*`;
  matches sorted with numbers in numeric order). Several columns are allowed for `options` (their values become
  the option list, lettered A, B, ... in column order; empty trailing columns are dropped, an empty column before a
  filled one is a reject), `bbox` (exactly 4 columns: the box's numbers) and `id` (the values joined with `_`).
  A role left out keeps the adapter's own field names.
- `media_template`: a path with one `{}`, filled with the value of the adapter's media field (`{}.mp4` turns
  `4010069381` into `4010069381.mp4`); the path then resolves against the media root like any relative path. A
  template starting with `**/` names a file found anywhere below the media root (`**/{}.mp4` finds
  `1164/4010069381.mp4`); the folder is listed once, symlinked folders are not entered, and a name found in two
  folders is a reject.
- `answer_index`: 0 or 1: an integer answer, and a digit string (CSV cells are strings), is an option index
  counted from 0 or 1. Unset: JSON integers are 0-based indices, strings are letters or option texts.
- `bbox_format`: how `screenspot` reads a list of 4 numbers (`auto`, `xyxy`, `xywh`).

`bbox` and `img_size` values that are strings (CSV cells) are read as JSON (`"[1, 2, 3, 4]"`, `"20"`). A mapping
comes from `--field ROLE=COLUMN` flags, `--media-template`, `--answer-index`, `--bbox-format`, a YAML file
(`--mapping FILE`, the same keys) or a preset (`PRESETS`: an adapter plus the mapping of one published layout); the
command line overrides the file, which overrides the preset.

Module-level imports are stdlib only (`omni-rl --help` lists the presets); PyYAML is imported to read a file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapters import ADAPTERS, BBOX_FORMATS, Adapter
from .records import MEDIA_KINDS, Reject

MULTI_COLUMN_ROLES = ("options", "bbox", "id")
SEARCH = "**/"  # a media template starting with this names a file anywhere below the media root
JSON_ROLES = ("bbox", "img_size")  # a string value of these roles is read as JSON
MAPPING_KEYS = ("fields", "media_template", "answer_index", "bbox_format")
_GLOB_CHARS = re.compile(r"[*?\[]")
_NUMBERS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Mapping:
    """Where the roles of an adapter are in a source (module docstring). Empty: the adapter's own field names."""

    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    media_template: str | None = None
    answer_index: int | None = None
    bbox_format: str | None = None

    def over(self, base: Mapping) -> Mapping:
        """This mapping's settings on top of `base`'s (fields role by role)."""
        return Mapping(fields={**base.fields, **self.fields},
                       media_template=self.media_template if self.media_template is not None else base.media_template,
                       answer_index=self.answer_index if self.answer_index is not None else base.answer_index,
                       bbox_format=self.bbox_format if self.bbox_format is not None else base.bbox_format)

    def check(self, ad: Adapter, columns: Sequence[str] | None) -> None:
        """Raise ValueError, naming what exists, for a role `ad` does not read, a bad setting, or (when the source
        has a schema: `columns`) a mapped column the source lacks."""
        for role, cols in self.fields.items():
            if role not in ad.roles:
                raise ValueError(f"adapter {ad.name} has no role {role!r}; its roles: {', '.join(ad.roles)}")
            if not cols or not all(c.strip() for c in cols):
                raise ValueError(f"--field {role}= needs a column name")
            if len(cols) > 1 and role not in MULTI_COLUMN_ROLES:
                raise ValueError(f"role {role} takes one column, got {', '.join(cols)} (several columns: "
                                 f"{', '.join(MULTI_COLUMN_ROLES)})")
            if role == "bbox" and len(cols) not in (1, 4):
                raise ValueError(f"role bbox takes one column or 4 (x1, y1, x2, y2 or x, y, w, h), got {len(cols)}")
            if columns is not None:
                for c in cols:
                    if not _matches(c, columns):
                        raise ValueError(f"column {c!r} (mapped to {role}) is not in the source; its columns: "
                                         f"{', '.join(columns)}")
        if self.media_template is not None:
            if self.media_template.count("{}") != 1 or re.search(r"\{(?!\})|(?<!\{)\}", self.media_template):
                raise ValueError(f"--media-template needs exactly one {{}} (where the column's value goes) and no "
                                 f"other braces, got {self.media_template!r}")
            if "**" in self.media_template.removeprefix(SEARCH) or (
                    self.media_template.startswith(SEARCH) and "/" in self.media_template.removeprefix(SEARCH)):
                raise ValueError(f"--media-template: ** may only start it, followed by a file name ('**/{{}}.mp4'), "
                                 f"got {self.media_template!r}")
            if not _media_roles(ad):
                raise ValueError(f"adapter {ad.name} reads no media; --media-template does not apply")
        if self.answer_index not in (None, 0, 1):
            raise ValueError(f"answer_index must be 0 or 1, got {self.answer_index!r}")
        if self.answer_index is not None and "options" not in ad.roles:
            raise ValueError(f"adapter {ad.name} has no options; --answer-index does not apply")
        if self.bbox_format is not None and self.bbox_format not in BBOX_FORMATS:
            raise ValueError(f"bbox_format must be one of {', '.join(BBOX_FORMATS)}, got {self.bbox_format!r}")

    def apply(self, rec: dict[str, Any], ad: Adapter, media: MediaIndex | None = None) -> dict[str, Any]:
        """`rec` with each mapped role's value under the field `ad` reads for it, and the media template applied
        (`media` finds the files of a `**/` template). Raises `Reject` for a mapped column the record lacks, empty
        options, or a media value the template cannot take (or finds no file or several for)."""
        out = dict(rec)
        for role, cols in self.fields.items():
            out[ad.roles[role]] = _value(rec, role, cols)
        for role in JSON_ROLES:
            name = ad.roles.get(role)
            if name is not None and isinstance(out.get(name), str):
                out[name] = _json_or_text(out[name])
        if self.media_template is not None:
            for role in _media_roles(ad):
                name = ad.roles[role]
                out[name] = _fill(self.media_template, out.get(name), self._column(role, ad), media)
        return out

    def explain(self, reason: str, ad: Adapter) -> str:
        """An adapter's reject `reason` with the source column(s) added where the field it names was mapped."""
        name = re.split(r"[/: ]", reason.partition(":")[2], maxsplit=1)[0]
        for role, cols in self.fields.items():
            if ad.roles[role] == name and cols != (name,):
                return f"{reason} (from column{'s' if len(cols) > 1 else ''} {', '.join(cols)})"
        return reason

    def _column(self, role: str, ad: Adapter) -> str:
        return self.fields[role][0] if role in self.fields else ad.roles[role]


def _media_roles(ad: Adapter) -> list[str]:
    return [r for r in ad.roles if r in MEDIA_KINDS]


def _matches(spec: str, columns: Sequence[str]) -> list[str]:
    """The columns `spec` names: itself when it is a column, else the glob's matches in natural order."""
    if spec in columns or not _GLOB_CHARS.search(spec):
        return [spec] if spec in columns else []
    hits = [c for c in columns if fnmatch.fnmatchcase(c, spec)]
    return sorted(hits, key=lambda c: [int(p) if p.isdigit() else p for p in _NUMBERS.split(c)])


def _missing(col: str, role: str, rec: dict[str, Any]) -> Reject:
    cols = list(rec)
    shown = ", ".join(str(c) for c in cols[:30]) + (f", ... ({len(cols)} in all)" if len(cols) > 30 else "")
    return Reject(f"missing_field:{col}: no column {col!r} (mapped to {role}); the record's columns: {shown}")


def _value(rec: dict[str, Any], role: str, specs: tuple[str, ...]) -> Any:
    cols: list[str] = []
    for spec in specs:
        hits = _matches(spec, list(rec))
        if not hits:
            raise _missing(spec, role, rec)
        cols += hits
    if role == "options" and (len(cols) > 1 or len(specs) > 1 or _GLOB_CHARS.search(specs[0])):
        return _spread_options(rec, cols)
    if role == "options" and (rec[cols[0]] is None or rec[cols[0]] in ("", [], {})):
        raise Reject(f"bad_field:{cols[0]}: no options")
    if role == "bbox" and len(cols) > 1:
        if len(cols) != 4:
            raise Reject(f"bad_field:{','.join(cols)}: a box needs 4 columns, the pattern matched {len(cols)}")
        return [_json_or_text(rec[c]) if isinstance(rec[c], str) else rec[c] for c in cols]
    if role == "id" and len(cols) > 1:
        parts = []
        for c in cols:
            v = rec[c]
            if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
                raise Reject(f"bad_field:{c}: an id part must be a non-empty string or an integer, got {v!r:.60}")
            parts.append(str(v).strip())
        return "_".join(parts)
    return rec[cols[0]]


def _spread_options(rec: dict[str, Any], cols: list[str]) -> list[Any]:
    """The values of the option columns in order; empty trailing columns dropped (a question with fewer options
    than the layout has columns)."""
    values = [rec[c] for c in cols]
    empty = [v is None or (isinstance(v, str) and not v.strip()) for v in values]
    while empty and empty[-1]:
        empty.pop()
        values.pop()
    if not values:
        raise Reject(f"bad_field:{','.join(cols)}: every option column is empty")
    if any(empty):
        gap = cols[empty.index(True)]
        raise Reject(f"bad_field:{gap}: empty option before a filled one (options {', '.join(cols)})")
    return values


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _fill(template: str, value: Any, column: str, media: MediaIndex | None = None) -> Any:
    """The media path `template` makes of `value` (of each value of a list); absent values pass through (the adapter
    names them missing)."""
    if isinstance(value, (list, tuple)):
        return [_fill(template, v, column, media) for v in value]
    if value is None or (isinstance(value, str) and not value.strip()):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Reject(f"bad_field:{column}: --media-template needs a string or integer id, got {type(value).__name__}")
    path = template.replace("{}", str(value).strip())
    if not template.startswith(SEARCH):
        return path
    if media is None:
        raise ValueError(f"a {SEARCH} media template needs a MediaIndex of the media root")
    return media.find(path.removeprefix(SEARCH), column)


class MediaIndex:
    """The files below a media root by name, listed on first use (media templates starting with `**/`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._paths: dict[str, list[str]] | None = None

    def find(self, name: str, column: str) -> str:
        """The path, relative to the root, of the one file called `name`; `Reject` for none or several."""
        if self._paths is None:
            self._paths = {}
            for folder, _, files in os.walk(self.root):
                for f in files:
                    self._paths.setdefault(f, []).append(os.path.relpath(os.path.join(folder, f), self.root))
        hits = sorted(self._paths.get(name, []))
        if not hits:
            raise Reject(f"missing_media:{self.root / '**' / name}")
        if len(hits) > 1:
            raise Reject(f"bad_field:{column}: {name} is in {len(hits)} folders below the media root "
                         f"({', '.join(hits[:3])}); give the folder in --media-template or --media-root")
        return hits[0]


# ------------------------------------------------------------------------------------------------ parsing input
def parse_field(text: str) -> tuple[str, tuple[str, ...]]:
    """`ROLE=COLUMN`, `ROLE=C1,C2,...` or `ROLE=PATTERN` -> (role, columns)."""
    role, sep, cols = text.partition("=")
    if not sep or not role.strip():
        raise ValueError(f"--field takes ROLE=COLUMN (e.g. video=videoID, options=a0,a1,a2), got {text!r}")
    return role.strip(), tuple(c.strip() for c in cols.split(","))


def from_dict(data: Any, where: str) -> Mapping:
    """A mapping from a parsed YAML / JSON object with the keys of `MAPPING_KEYS`."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with keys {', '.join(MAPPING_KEYS)}, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in MAPPING_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(MAPPING_KEYS)}")
    fields: dict[str, tuple[str, ...]] = {}
    raw = data.get("fields") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: fields must map roles to columns, got {type(raw).__name__}")
    for role, cols in raw.items():
        if isinstance(cols, str):
            fields[str(role)] = parse_field(f"{role}={cols}")[1]
        elif isinstance(cols, list) and cols and all(isinstance(c, (str, int)) for c in cols):
            fields[str(role)] = tuple(str(c) for c in cols)
        else:
            raise ValueError(f"{where}: fields.{role} must be a column name or a list of them, got {cols!r:.80}")
    template = data.get("media_template")
    if template is not None and not isinstance(template, str):
        raise ValueError(f"{where}: media_template must be a string such as '{{}}.mp4', got {template!r:.80}")
    answer_index = data.get("answer_index")
    if answer_index is not None and (isinstance(answer_index, bool) or answer_index not in (0, 1)):
        raise ValueError(f"{where}: answer_index must be 0 or 1, got {answer_index!r:.40}")
    return Mapping(fields=fields, media_template=template, answer_index=answer_index,
                   bbox_format=data.get("bbox_format"))


def load_mapping(path: str | Path) -> Mapping:
    """A mapping from a YAML file (module docstring; `docs/data.md` has an example)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mapping file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from e
    return from_dict(data, str(path))


def from_args(fields: Sequence[str] = (), *, media_template: str | None = None, answer_index: int | None = None,
              bbox_format: str | None = None, mapping_file: str | Path | None = None) -> Mapping:
    """The command line's mapping: the flags over the file."""
    base = load_mapping(mapping_file) if mapping_file is not None else Mapping()
    parsed = [parse_field(f) for f in fields]
    roles = [r for r, _ in parsed]
    dupes = sorted({r for r in roles if roles.count(r) > 1})
    if dupes:
        raise ValueError(f"--field {', '.join(dupes)} given more than once")
    flags = Mapping(fields=dict(parsed), media_template=media_template, answer_index=answer_index,
                    bbox_format=bbox_format)
    return flags.over(base)


# ------------------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class Preset:
    """An adapter with the mapping of one published layout; `layout` names the columns it expects."""

    name: str
    adapter: str
    layout: str
    mapping: Mapping


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("nextqa_csv", "video_mcq",
           "NExT-QA multiple-choice CSV (val.csv / test.csv): video, question, answer (0-based index), qid, a0..a4; "
           "the video <video>.mp4 anywhere below the media root (NExTVideo/<folder>/<video>.mp4); id <video>_<qid>",
           Mapping(fields={"video": ("video",), "question": ("question",), "answer": ("answer",),
                           "options": ("a0", "a1", "a2", "a3", "a4"), "id": ("video", "qid")},
                   media_template="**/{}.mp4", answer_index=0)),
    Preset("videomme_parquet", "video_mcq",
           "Video-MME parquet: videoID, question_id, question, options ('A. ...' list), answer (letter); the video at "
           "<media root>/<videoID>.mp4",
           Mapping(fields={"video": ("videoID",), "id": ("question_id",), "question": ("question",),
                           "options": ("options",), "answer": ("answer",)}, media_template="{}.mp4")),
    Preset("mmau_json", "audio_qa",
           "MMAU JSON (mmau_test_mini.json): id, audio_id (the clip's path), question, choices, answer (the text of "
           "one choice)",
           Mapping(fields={"audio": ("audio_id",), "id": ("id",), "question": ("question",), "options": ("choices",),
                           "answer": ("answer",)})),
    Preset("screenspot_v2_json", "screenspot",
           "ScreenSpot-v2 JSON (screenspot_{desktop,mobile,web}_v2.json): img_filename, instruction, bbox in pixels "
           "as [x, y, w, h]",
           Mapping(fields={"image": ("img_filename",), "instruction": ("instruction",), "bbox": ("bbox",)},
                   bbox_format="xywh")),
)}


def resolve(name: str) -> tuple[Adapter, Mapping]:
    """The adapter an adapter or preset name stands for, and the preset's mapping (empty for an adapter). Raises
    KeyError naming the adapters and presets."""
    if name in ADAPTERS:
        return ADAPTERS[name], Mapping()
    if name in PRESETS:
        p = PRESETS[name]
        return ADAPTERS[p.adapter], p.mapping
    raise KeyError(f"unknown adapter {name!r}; known: {', '.join(ADAPTERS)}; presets: {', '.join(PRESETS)}")


def describe_presets() -> str:
    """One block per preset: name, its adapter, the layout it expects (the `omni-rl convert --help` listing)."""
    lines = []
    for p in PRESETS.values():
        lines.append(f"  {p.name} (adapter {p.adapter})")
        lines += textwrap.wrap(p.layout, width=116, initial_indent="    expects: ", subsequent_indent=" " * 13)
    return "\n".join(lines)
