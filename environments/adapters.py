"""Adapters from public dataset formats to our rows (`docs/data.md`, "Converting public datasets").

An adapter maps ONE source record to one output line or raises `Reject` with a reason; `convert.convert` runs it
over a whole source. `ADAPTERS` maps each name to an `Adapter` (what it reads, what it writes, the function):

- `mmpr`: MMPR-style preference records (`image`, `question`, `chosen`, `rejected`) -> MPO pairs
  `{"id", "source", "prompt": <row>, "chosen", "rejected"}` (what `omni_rl.data.pairs.load_pairs` reads). MMPR has
  no ground truth, so the prompt row gets the `format` verifier with `answer: null` (MPO never scores it). InternVL's
  `<image>` placeholders in the question mark where the images go.
- `clevr`: image QA (CLEVR questions, geometry sets such as Geometry3K / GeoQA): `mathruler` when the answer is a
  number (integer, decimal, fraction `a/b`, percentage) or LaTeX / math notation (a backslash, `$`, `°`, `π`, `√`),
  else `string-match` (CLEVR's yes / no / colour / shape / size / material words). A `<answer>...</answer>` tag in
  the answer (R1-V style solutions) is unwrapped.
- `screenspot`: GUI grounding -> `gui-coordinate` with the box in 0-1000 normalised coordinates
  (`coord_space: norm1000`), rounded outwards to integers (the box never shrinks). See `screenspot` for how the box
  convention is told apart.
- `librispeech`: ASR -> `asr` (1 - WER), the transcript as the answer.
- `video_mcq`: video multiple-choice QA -> `multiple-choice` with the options as `verifier_kwargs.options`.
- `audio_qa`: audio QA -> `multiple-choice` when the record has options, else `string-match`.

Every prompt but MMPR's ends with the synthetic suite's instruction ("Think briefly inside <think></think>, then give
the final answer in \\boxed{}."), which the `format` part of the reward checks. Module-level imports are stdlib only:
`omni-rl --help` reads `ADAPTERS` without loading numpy, PIL or `datasets`.
"""

from __future__ import annotations

import json
import math
import re
import string
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .records import MediaResolver, Reject

BBOX_FORMATS = ("auto", "xyxy", "xywh")
NORM = 1000  # the gui-coordinate space written: 0-1000 on both axes
GUI_SPACE = ("Give the click point in coordinates normalised to 0-1000 ((0, 0) is the top-left corner, (1000, 1000) "
             "the bottom-right) as (x, y).")
_PLACEHOLDER = "<image>"
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_LETTER_RE = re.compile(r"^\(?\s*([A-Za-z])\s*\)?\s*[.:)]?$")
_LEADING_LETTER_RE = re.compile(r"^(?:\(([A-Z])\)|([A-Z])[.:)])\s+(.+)$", re.S)


@dataclass
class Context:
    """What an adapter gets besides the record: the `source` name written into rows, the media resolver and the
    adapter options."""

    source: str
    media: MediaResolver
    bbox_format: str = "auto"
    answer_index: int | None = None  # 0 / 1: integer answers (digit strings too) count options from 0 / 1


AdapterFn = Callable[[dict[str, Any], int, Context], dict[str, Any]]


@dataclass(frozen=True)
class Adapter:
    name: str
    reads: str  # the public fields, one line
    writes: str  # the line written per record, one line
    fn: AdapterFn
    output: str = "rows"  # "rows" (omni_rl.data.loading.load_samples) or "pairs" (omni_rl.data.pairs.load_pairs)
    roles: dict[str, str] = field(default_factory=dict)  # role -> the field read first for it (column mappings)


ADAPTERS: dict[str, Adapter] = {}


def adapter(name: str, *, reads: str, writes: str, roles: dict[str, str],
            output: str = "rows") -> Callable[[AdapterFn], AdapterFn]:
    def deco(fn: AdapterFn) -> AdapterFn:
        ADAPTERS[name] = Adapter(name=name, reads=reads, writes=writes, fn=fn, output=output, roles=roles)
        return fn

    return deco


def describe_adapters() -> str:
    """One block per adapter: name, what it reads, what it writes (the `omni-rl convert --help` listing)."""
    lines = []
    for a in ADAPTERS.values():
        lines.append(f"  {a.name}")
        for label, text in (("reads: ", a.reads), ("writes:", a.writes), ("roles: ", ", ".join(a.roles))):
            lines += textwrap.wrap(text, width=116, initial_indent=f"    {label} ", subsequent_indent=" " * 12)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- helpers
def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def _first(rec: dict[str, Any], names: Sequence[str]) -> tuple[str, Any]:
    """(field name, value) of the first of `names` the record has with a non-empty value."""
    for n in names:
        if _present(rec.get(n)):
            return n, rec[n]
    raise Reject(f"missing_field:{'/'.join(names)}")


def _text(rec: dict[str, Any], names: Sequence[str]) -> str:
    name, value = _first(rec, names)
    if not isinstance(value, str):
        raise Reject(f"bad_field:{name}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise Reject(f"bad_field:{name}: empty")
    return value.strip()


def _record_id(rec: dict[str, Any], names: Sequence[str], ctx: Context, index: int) -> str:
    """The record's own id (first of `names`), else `<source>-<index>`."""
    for n in names:
        v = rec.get(n)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            raise Reject(f"bad_field:{n}: expected a non-empty string or an integer id, got {v!r:.60}")
        return str(v).strip()
    return f"{ctx.source}-{index:06d}"


def _media_part(ctx: Context, rec: dict[str, Any], kind: str, names: Sequence[str], index: int) -> dict[str, str]:
    name, value = _first(rec, names)
    path = ctx.media.file(value, kind, field_name=name, name=f"{index:06d}")
    return {"type": kind, kind: ctx.media.ref(path)}


def _row(rid: str, ctx: Context, parts: list[dict[str, Any]], text: str, verifier: str, answer: Any,
         verifier_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    from omni_rl.data.synthetic import question_row  # lazy: `omni-rl --help` imports this module

    return question_row(rid, ctx.source, parts, text, verifier, answer, verifier_kwargs)


def _answer_text(name: str, value: Any) -> str | list[str]:
    """A free-form gold answer as a string (numbers formatted, `<answer>` tags unwrapped), or a list of acceptable
    alternatives."""
    if isinstance(value, bool):
        raise Reject(f"bad_field:{name}: a true/false value is ambiguous; write the answer as text (yes / no)")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Reject(f"bad_field:{name}: {value} is not a number")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        tags = _ANSWER_TAG_RE.findall(value)
        s = (tags[-1] if tags else value).strip()
        if not s:
            raise Reject(f"bad_field:{name}: empty")
        return s
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    raise Reject(f"bad_field:{name}: expected a string, a number or a list of strings, got {type(value).__name__}")


def _is_math(answer: str | list[str]) -> bool:
    """A number (integer, decimal, fraction, percentage) or math notation: what mathruler compares."""
    if not isinstance(answer, str):
        return False
    from omni_rl.verifiers.normalize import parse_number

    s = answer.strip()
    if parse_number(s[:-1].strip() if s.endswith("%") else s) is not None:
        return True
    return any(c in s for c in ("\\", "$", "°", "π", "√"))


def _options(name: str, value: Any) -> dict[str, str]:
    """Options as letter -> text. A list is lettered A, B, ... in order; when every item starts with its own
    letter ("A. red", "(B) blue"), that prefix is dropped. A dict maps letters to texts (None values, Arrow's struct
    padding, are dropped)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise Reject(f"bad_field:{name}: expected a list of options or a letter -> text object, got a string "
                         f"that is not JSON") from None
    if isinstance(value, dict):
        opts: dict[str, str] = {}
        for k, v in value.items():
            if v is None:
                continue
            letter = str(k).strip().strip("().").upper()
            if len(letter) != 1 or letter not in string.ascii_uppercase:
                raise Reject(f"bad_field:{name}: option key {k!r:.20} is not a letter")
            opts[letter] = v
        opts = dict(sorted(opts.items()))
    elif isinstance(value, (list, tuple)):
        if len(value) > 26:
            raise Reject(f"bad_field:{name}: {len(value)} options; at most 26 (A-Z)")
        opts = {string.ascii_uppercase[i]: v for i, v in enumerate(value)}
        if all(isinstance(v, str) for v in opts.values()):
            prefixed = {k: _LEADING_LETTER_RE.match(v.strip()) for k, v in opts.items()}
            if all(m is not None and (m.group(1) or m.group(2)) == k for k, m in prefixed.items()):
                opts = {k: m.group(3) for k, m in prefixed.items() if m is not None}
    else:
        raise Reject(f"bad_field:{name}: expected a list of options or a letter -> text object, got "
                     f"{type(value).__name__}")
    out: dict[str, str] = {}
    for k, v in opts.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)) or not str(v).strip():
            raise Reject(f"bad_field:{name}: option {k} is empty or not text")
        out[k] = str(v).strip()
    if len(out) < 2:
        raise Reject(f"bad_field:{name}: {len(out)} option(s); a multiple-choice question needs at least 2")
    return out


def _answer_letter(name: str, value: Any, opts: dict[str, str], base: int | None = None) -> str:
    """The gold letter from a letter ("B", "(B)", "b."), an index (a JSON integer, 0-based; with `base` 0 or 1 also
    a digit string, as CSV cells are, counted from `base`) or the text of one option (a single letter that is no
    option's letter but one option's text, such as "y" of ["x", "y"], is that text)."""
    span = f"{min(opts)}-{max(opts)}"
    if isinstance(value, bool):
        raise Reject(f"bad_answer: {name}={value} is neither a letter, an index nor an option text")
    if base is not None and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        i = int(value) - (base or 0)
        letters = list(opts)
        if not 0 <= i < len(letters):
            raise Reject(f"bad_answer: index {int(value)} is out of range for {len(letters)} options (indices are "
                         f"{base or 0}-based)")
        return letters[i]
    if not isinstance(value, str) or not value.strip():
        raise Reject(f"bad_answer: {name} is empty or not a letter, an index or an option text")
    s = value.strip()
    m = _LETTER_RE.match(s)
    if m and m.group(1).upper() in opts:
        return m.group(1).upper()
    lead = _LEADING_LETTER_RE.match(s)
    if lead and (lead.group(1) or lead.group(2)) in opts:
        return lead.group(1) or lead.group(2)
    hits = [k for k, v in opts.items() if v.casefold() == s.casefold()]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise Reject(f"bad_answer: {s[:60]!r} is the text of options {', '.join(hits)}")
    if m:
        raise Reject(f"bad_answer: letter {m.group(1).upper()} is not one of the options {span}")
    if s.lstrip("-").isdigit():
        raise Reject(f"bad_answer: {s[:60]!r} is neither an option letter ({span}) nor the text of an option (a "
                     f"column of option indices needs --answer-index 0 or 1)")
    raise Reject(f"bad_answer: {s[:60]!r} is neither an option letter ({span}) nor the text of an option (an index "
                 f"must be a JSON integer, 0-based)")


def _options_text(question: str, opts: dict[str, str]) -> str:
    lines = "\n".join(f"{k}. {v}" for k, v in opts.items())
    return f"{question}\n{lines}\nAnswer with the option's letter."


# ------------------------------------------------------------------------------------------------------ adapters
@adapter("mmpr", output="pairs",
         roles={"id": "id", "image": "image", "question": "question", "chosen": "chosen", "rejected": "rejected"},
         reads="MMPR-style preference records: image (path, list of paths, HF image {path, bytes}, or none), "
               "question (InternVL <image> placeholders mark the images), chosen, rejected[, id]",
         writes="MPO pairs {id, source, prompt: <row, verifier format, answer null>, chosen, rejected}: "
                "data.path of stage=mpo")
def mmpr(rec: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    question = _text(rec, ("question",))
    chosen, rejected = rec.get("chosen"), rec.get("rejected")
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        if value is None:
            raise Reject(f"missing_field:{name}")
        if not isinstance(value, str) or not value.strip():
            raise Reject(f"bad_field:{name}: expected a non-empty string")
    assert isinstance(chosen, str) and isinstance(rejected, str)
    if chosen.strip() == rejected.strip():
        raise Reject("bad_field:rejected: identical to chosen")
    rid = _record_id(rec, ("id",), ctx, index)
    images = rec.get("image")
    values = [] if not _present(images) else list(images) if isinstance(images, (list, tuple)) else [images]
    parts = []
    for k, value in enumerate(values):
        path = ctx.media.file(value, "image", field_name="image",
                              name=f"{index:06d}" + (f"_{k}" if len(values) > 1 else ""))
        parts.append({"type": "image", "image": ctx.media.ref(path)})
    prompt = {"id": rid, "source": ctx.source, "messages": [{"role": "user", "content": _interleave(question, parts)}],
              "verifier": "format", "answer": None}
    return {"id": rid, "source": ctx.source, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def _interleave(question: str, images: list[dict[str, str]]) -> str | list[dict[str, str]]:
    """The user content: the images at the question's `<image>` placeholders (before the text when it has none);
    text pieces stripped, empty ones dropped. Text-only: the question string."""
    pieces = question.split(_PLACEHOLDER)
    n = len(pieces) - 1
    if n and n != len(images):
        raise Reject(f"bad_field:question: {n} {_PLACEHOLDER} placeholder(s) for {len(images)} image(s)")
    text = [p.strip() for p in pieces]
    if not any(text):
        raise Reject(f"bad_field:question: no text besides the {_PLACEHOLDER} placeholders")
    if not images:
        return question
    if not n:
        return [*images, {"type": "text", "text": question}]
    content: list[dict[str, str]] = []
    for k, piece in enumerate(text):
        if piece:
            content.append({"type": "text", "text": piece})
        if k < n:
            content.append(images[k])
    return content


@adapter("clevr",
         roles={"id": "id", "image": "image_filename", "question": "question", "answer": "answer"},
         reads="image QA (CLEVR questions file, geometry sets): image_filename / image / image_path, "
               "question / problem, answer / solution[, question_index / id]",
         writes="image rows; mathruler for numeric / math answers, else string-match")
def clevr(rec: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    rid = _record_id(rec, ("id", "question_index", "question_id"), ctx, index)
    question = _text(rec, ("question", "problem"))
    answer = _answer_text(*_first(rec, ("answer", "solution")))
    verifier = "mathruler" if _is_math(answer) else "string-match"
    part = _media_part(ctx, rec, "image", ("image_filename", "image", "image_path"), index)
    return _row(rid, ctx, [part], question, verifier, answer)


@adapter("screenspot",
         roles={"id": "id", "image": "img_filename", "instruction": "instruction", "bbox": "bbox",
                "img_size": "img_size"},
         reads="GUI grounding (ScreenSpot, ScreenSpot-v2, ScreenSpot-Pro): img_filename / image / image_path / "
               "file_name, instruction, bbox (pixels or [0, 1]; [x1, y1, x2, y2] or [x, y, w, h], see "
               "--bbox-format)[, img_size, id]",
         writes="image rows for gui-coordinate, the box in norm1000 (0-1000) coordinates")
def screenspot(rec: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    """The box convention: a `bbox` object says it by its keys (x1/y1/x2/y2 or x/y/w(idth)/h(eight)); a list of 4
    numbers is normalised when all four lie in [0, 1] (else pixels) and is read as `--bbox-format`, which by default
    (`auto`) takes normalised boxes as [x1, y1, x2, y2] (the Hugging Face ScreenSpot / ScreenSpot-v2 sets), pixel boxes
    of records with `img_size` as [x1, y1, x2, y2] (ScreenSpot-Pro) and other pixel boxes as [x, y, w, h] (the
    original ScreenSpot JSON). Pixel boxes are divided by the image's own size (read with PIL); a record whose
    `img_size` disagrees with the image is rejected."""
    rid = _record_id(rec, ("id",), ctx, index)
    instruction = _text(rec, ("instruction",))
    box = _parse_box(rec, ctx.bbox_format)
    size = rec.get("img_size")
    if _present(size) and not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_number(v) for v in size)):
        raise Reject(f"bad_field:img_size: expected [width, height], got {size!r:.60}")
    field_name, image = _first(rec, ("img_filename", "image", "image_path", "file_name"))
    path = ctx.media.file(image, "image", field_name=field_name, name=f"{index:06d}")
    width, height = ctx.media.image_size(path)
    if _present(size) and (float(size[0]), float(size[1])) != (float(width), float(height)):
        raise Reject(f"bad_field:img_size: the record says {size[0]}x{size[1]}, the image is {width}x{height}")
    x1, y1, x2, y2 = box.scaled(width, height)
    answer = [math.floor(x1 * NORM + 1e-6), math.floor(y1 * NORM + 1e-6), math.ceil(x2 * NORM - 1e-6),
              math.ceil(y2 * NORM - 1e-6)]
    part = {"type": "image", "image": ctx.media.ref(path)}
    return _row(rid, ctx, [part], f"Instruction: {instruction}\n{GUI_SPACE}", "gui-coordinate", answer,
                {"coord_space": "norm1000"})


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


@dataclass(frozen=True)
class _Box:
    """A box as [x1, y1, x2, y2], normalised or in pixels; `shown` is how the record wrote it, `read` how it was
    read (for reject reasons)."""

    xyxy: tuple[float, float, float, float]
    normalised: bool
    shown: str
    read: str

    def scaled(self, width: int, height: int) -> tuple[float, float, float, float]:
        """[x1, y1, x2, y2] in [0, 1]; rejects a box outside the image."""
        sx, sy = (1.0, 1.0) if self.normalised else (float(width), float(height))
        x1, y1, x2, y2 = self.xyxy[0] / sx, self.xyxy[1] / sy, self.xyxy[2] / sx, self.xyxy[3] / sy
        if min(x1, y1) < 0.0 or max(x2, y2) > 1.0 + 1e-9:
            raise Reject(f"bad_bbox: {self.shown} read as {self.read} lies outside the {width}x{height} image (pass "
                         f"--bbox-format xyxy or xywh if that reading is wrong)")
        return x1, y1, min(x2, 1.0), min(y2, 1.0)


def _parse_box(rec: dict[str, Any], bbox_format: str) -> _Box:
    """The record's box (see `screenspot` for the conventions)."""
    name, box = _first(rec, ("bbox", "box"))
    if isinstance(box, str):
        try:
            box = json.loads(box)
        except json.JSONDecodeError:
            raise Reject(f"bad_field:{name}: {box[:60]!r} is not a JSON list of 4 numbers") from None
    if isinstance(box, dict):
        low = {str(k).lower(): v for k, v in box.items() if v is not None}
        if all(k in low for k in ("x1", "y1", "x2", "y2")):
            nums, fmt = [low["x1"], low["y1"], low["x2"], low["y2"]], "xyxy"
        elif all(k in low for k in ("x", "y")) and any(k in low for k in ("w", "width")) \
                and any(k in low for k in ("h", "height")):
            nums, fmt = [low["x"], low["y"], low.get("w", low.get("width")), low.get("h", low.get("height"))], "xywh"
        else:
            raise Reject(f"bad_field:{name}: a box object needs x1, y1, x2, y2 or x, y, w, h")
    elif isinstance(box, (list, tuple)):
        nums, fmt = list(box), bbox_format
    else:
        raise Reject(f"bad_field:{name}: expected 4 numbers, got {type(box).__name__}")
    if len(nums) != 4 or not all(_number(v) for v in nums):
        raise Reject(f"bad_field:{name}: expected 4 finite numbers, got {nums!r:.80}")
    nums = [float(v) for v in nums]
    normalised = all(0.0 <= v <= 1.0 for v in nums)
    if fmt == "auto":
        fmt = "xyxy" if normalised or _present(rec.get("img_size")) else "xywh"
    if fmt == "xywh":
        nums = [nums[0], nums[1], nums[0] + nums[2], nums[1] + nums[3]]
    shown = f"{name} {json.dumps(box)}"
    read = f"{fmt} {'normalised' if normalised else 'pixels'}"
    if not (nums[2] > nums[0] and nums[3] > nums[1]):
        raise Reject(f"bad_bbox: {shown} read as {read} has no area")
    return _Box(xyxy=(nums[0], nums[1], nums[2], nums[3]), normalised=normalised, shown=shown, read=read)


@adapter("librispeech",
         roles={"id": "id", "audio": "audio", "answer": "text"},
         reads="ASR (LibriSpeech, HF librispeech_asr): audio (path, HF audio {path, bytes} or {array, "
               "sampling_rate}) / file / audio_path, text / transcript[, id]",
         writes="audio rows for asr (1 - WER) with the transcript as the answer; embedded audio written as files")
def librispeech(rec: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    rid = _record_id(rec, ("id",), ctx, index)
    text = _text(rec, ("text", "transcript"))
    part = _media_part(ctx, rec, "audio", ("audio", "file", "audio_path"), index)
    return _row(rid, ctx, [part], "Transcribe the speech in the audio.", "asr", text)


@adapter("video_mcq",
         roles={"id": "id", "video": "video", "question": "question", "options": "options", "answer": "answer"},
         reads="video multiple-choice QA (Video-MME, MVBench, NExT-QA style): video / video_path, question, "
               "options / candidates / choices (list or letter -> text), answer (letter, 0-based index or option "
               "text)[, id / question_id]",
         writes="video rows for multiple-choice, answer = letter, verifier_kwargs.options")
def video_mcq(rec: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    return _mcq_row(rec, index, ctx, "video", ("video", "video_path"), ("options", "candidates", "choices"))


def _mcq_row(rec: dict[str, Any], index: int, ctx: Context, kind: str, media_names: Sequence[str],
             option_names: Sequence[str]) -> dict[str, Any]:
    rid = _record_id(rec, ("id", "question_id"), ctx, index)
    question = _text(rec, ("question",))
    opts = _options(*_first(rec, option_names))
    letter = _answer_letter(*_first(rec, ("answer", "answer_idx")), opts, ctx.answer_index)
    part = _media_part(ctx, rec, kind, media_names, index)
    return _row(rid, ctx, [part], _options_text(question, opts), "multiple-choice", letter, {"options": opts})


@adapter("audio_qa",
         roles={"id": "id", "audio": "audio", "question": "question", "options": "options", "answer": "answer"},
         reads="audio QA: audio (path or HF audio object) / audio_path / file, question, answer[, options / "
               "choices / candidates, id / question_id]",
         writes="audio rows: multiple-choice (answer = letter) with options, else string-match")
def audio_qa(rec: dict[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    media_names, option_names = ("audio", "audio_path", "file"), ("options", "choices", "candidates")
    if any(_present(rec.get(n)) for n in option_names):
        return _mcq_row(rec, index, ctx, "audio", media_names, option_names)
    rid = _record_id(rec, ("id", "question_id"), ctx, index)
    question = _text(rec, ("question",))
    answer = _answer_text(*_first(rec, ("answer",)))
    part = _media_part(ctx, rec, "audio", media_names, index)
    return _row(rid, ctx, [part], question, "string-match", answer)
