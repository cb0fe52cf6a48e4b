"""A synthetic omni-modal task suite: tiny, procedurally generated, verifiable prompts for every modality.

`generate_suite(out_dir)` writes `out_dir/train.jsonl` (rows in the format of `docs/data.md`, media paths relative to
`out_dir`) plus the media under `out_dir/media/<task>/` and a `manifest.json`. It is deterministic in `seed` (one numpy
Generator per task, seeded from (seed, task name), so a task's rows do not depend on which other tasks are chosen),
idempotent (an existing suite with a matching manifest is returned as is) and atomic (written to a temporary
directory next to `out_dir`, then renamed).

Answers are balanced: multiple-choice tasks cycle the correct letter evenly over the options, count tasks cycle the
counts, so no constant answer beats chance. CLI: `python -m omni_rl.data.synthetic --out DIR [--tasks ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omni_rl.data.media import AUDIO_SR

GENERATOR_VERSION = 4  # 2: omni_av's beeps are the video's own audio track; 3: abstention rows carry no gold answer
#                        (answer null, unanswerable: true), the mismatch task; 4: audio_pitch has three pitches
INSTRUCTION = "Think briefly inside <think></think>, then give the final answer in \\boxed{}."
LETTERS = "ABCD"
VIDEO_FPS = 4  # native frame rate of the generated videos; sample them at this fps to see every frame

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 180),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
WORDS = ("cat", "dog", "sun", "tree", "book", "fish", "moon", "star")
ASR_VOCAB: dict[str, float] = {"apple": 300.0, "river": 450.0, "stone": 600.0, "cloud": 800.0, "green": 1050.0,
                               "music": 1400.0}
PITCHES = (("a low-pitched tone", 220.0), ("a medium-pitched tone", 440.0), ("a high-pitched tone", 880.0))
ABSENT_OBJECTS = ("cat", "dog", "car", "bird", "tree", "house")


@dataclass
class TaskContext:
    """What a task generator gets: where to write media, its Generator and the image size."""

    out_dir: Path  # suite root (media paths in rows are relative to it)
    task: str
    rng: np.random.Generator
    image_size: int

    def media_path(self, i: int, ext: str, tag: str = "") -> tuple[Path, str]:
        rel = f"media/{self.task}/{i:05d}{tag}.{ext}"
        p = self.out_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p, rel


TaskFn = Callable[[TaskContext, int], list[dict[str, Any]]]
TASKS: dict[str, TaskFn] = {}


def task(name: str) -> Callable[[TaskFn], TaskFn]:
    def deco(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return deco


# ------------------------------------------------------------------------------------------------------- helpers
def _row(ctx: TaskContext, i: int, parts: list[dict[str, Any]], text: str, verifier: str, answer: Any,
         verifier_kwargs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return question_row(f"{ctx.task}-{i:05d}", ctx.task, parts, text, verifier, answer, verifier_kwargs, **extra)


def question_row(rid: str, source: str, parts: list[dict[str, Any]], text: str, verifier: str, answer: Any,
                 verifier_kwargs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One user turn (media parts, then `text` and the answer-format instruction) as a dataset row; also used by
    the public-dataset adapters (omni_rl.environments.adapters)."""
    row: dict[str, Any] = {
        "id": rid,
        "source": source,
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": f"{text} {INSTRUCTION}"}]}],
        "verifier": verifier,
        "answer": answer,
    }
    if verifier_kwargs:
        row["verifier_kwargs"] = verifier_kwargs
    row.update(extra)
    return row


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """n values in range(k), each as often as possible (counts differ by <= 1), in random order."""
    return rng.permutation(np.arange(n) % k)


def _options(rng: np.random.Generator, correct: str, pool: list[str] | tuple[str, ...], letter: int,
             k: int = 4) -> dict[str, str]:
    """k options with `correct` at position `letter`, distractors drawn from `pool`."""
    distractors = [x for x in pool if x != correct]
    chosen = [distractors[j] for j in rng.permutation(len(distractors))[: k - 1]]
    chosen.insert(letter, correct)
    return {LETTERS[j]: chosen[j] for j in range(k)}


def _options_text(question: str, options: dict[str, str]) -> str:
    lines = "\n".join(f"{k}. {v}" for k, v in options.items())
    return f"{question}\n{lines}\nAnswer with the option's letter."


def _new_image(w: int, h: int, bg: tuple[int, int, int] = (255, 255, 255)) -> Any:
    from PIL import Image

    return Image.new("RGB", (w, h), bg)


def _draw_shape(draw: Any, shape: str, box: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=fill)
    else:
        raise ValueError(shape)


def _save_png(img: Any, path: Path) -> None:
    img.save(path, format="PNG", optimize=False)


def _image_part(ctx: TaskContext, i: int, img: Any) -> dict[str, str]:
    """Save row i's image as PNG under the task's media dir; return its message content part."""
    path, rel = ctx.media_path(i, "png")
    _save_png(img, path)
    return {"type": "image", "image": rel}


def _shape_image(ctx: TaskContext, shape: str, colour: str, quadrant: str) -> Any:
    from PIL import ImageDraw

    s = ctx.image_size
    img = _new_image(s, s)
    half = s // 2
    size = max(8, int(s * 0.34))
    qx = 0 if "left" in quadrant else half
    qy = 0 if "top" in quadrant else half
    slack = max(0, half - size - 2)
    ox = qx + 1 + int(ctx.rng.integers(0, slack + 1))
    oy = qy + 1 + int(ctx.rng.integers(0, slack + 1))
    _draw_shape(ImageDraw.Draw(img), shape, (ox, oy, ox + size, oy + size), COLOURS[colour])
    return img


_CODEC: str | None = None


def _video_codec() -> str:
    global _CODEC
    if _CODEC is None:
        import av

        _CODEC = "mpeg4"
        try:
            av.codec.Codec("libx264", "w")
            _CODEC = "libx264"
        except Exception:  # noqa: BLE001 -- FFmpeg built without x264: mpeg4 is always there
            pass
    return _CODEC


def write_mp4(path: Path, frames: np.ndarray, fps: int = VIDEO_FPS, *, audio: np.ndarray | None = None,
              sr: int = AUDIO_SR) -> None:
    """Encode uint8 RGB frames `[F, H, W, 3]` (H, W even) as an mp4 (libx264, else mpeg4), deterministically; with
    `audio` (float32 mono at `sr`) the file also gets an AAC audio track, its own soundtrack."""
    import av

    f, h, w, _ = frames.shape
    codec = _video_codec()
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "veryfast", "threads": "1"}
        else:
            stream.options = {"qscale": "2"}
            stream.thread_count = 1
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sr, layout="mono")
            sound.bit_rate = 96_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if sound is not None:
            pcm = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)[None]  # [1, N] planar float
            chunk = sound.codec_context.frame_size or 1024
            for start in range(0, pcm.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, start:start + chunk]), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts = sr, start
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)


def write_wav(path: Path, wav: np.ndarray, sr: int = AUDIO_SR) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(wav, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16", format="WAV")


def _tone(freq: float, seconds: float, amp: float = 0.5, sr: int = AUDIO_SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    ramp = min(len(x) // 2, int(0.01 * sr))  # 10 ms fades: no clicks
    if ramp:
        env = np.linspace(0.0, 1.0, ramp)
        x[:ramp] *= env
        x[-ramp:] *= env[::-1]
    return x.astype(np.float32)


def _beeps(rng: np.random.Generator, count: int, seconds: float = 1.6, freq: float = 660.0) -> np.ndarray:
    """`count` 0.15 s beeps separated by 0.2-0.25 s of silence, at a random offset, in `seconds` of audio."""
    beep, gap = 0.15, 0.2 + 0.05 * float(rng.random())
    used = count * beep + (count - 1) * gap
    start = 0.05 + float(rng.random()) * max(0.0, seconds - used - 0.1)
    wav = np.zeros(int(seconds * AUDIO_SR), np.float32)
    for b in range(count):
        at = int((start + b * (beep + gap)) * AUDIO_SR)
        tone = _tone(freq, beep, amp=0.4 + 0.2 * float(rng.random()))
        wav[at: at + len(tone)] += tone[: len(wav) - at]
    return wav


def _flash_frames(ctx: TaskContext, count: int) -> np.ndarray:
    """12 frames (3 s at 4 fps) in 6 pairs; `count` of the pairs 1, 3, 5 show a bright square (a flash). Flashes last
    2 frames, aligned to frame pairs (Qwen fuses frames 2 by 2) and are separated by >= 2 dark frames."""
    s = ctx.image_size + (ctx.image_size % 2)  # yuv420p needs even sides
    frames = np.zeros((12, s, s, 3), np.uint8)
    frames[:] = 20
    lit = sorted(ctx.rng.choice([1, 3, 5], size=count, replace=False).tolist())
    colour = np.array(COLOURS[str(ctx.rng.choice(list(COLOURS)))], np.uint8)
    m = s // 6
    for pair in lit:
        frames[2 * pair: 2 * pair + 2, m: s - m, m: s - m] = colour
        frames[2 * pair: 2 * pair + 2, 2 * m: s - 2 * m, 2 * m: s - 2 * m] = 255
    return frames


# --------------------------------------------------------------------------------------------------------- tasks
@task("image_mcq")
def _image_mcq(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    letters = _balanced(ctx.rng, n, 4)
    rows = []
    for i in range(n):
        shape = str(ctx.rng.choice(SHAPES))
        colour = str(ctx.rng.choice(list(COLOURS)))
        quadrant = str(ctx.rng.choice(QUADRANTS))
        img = _shape_image(ctx, shape, colour, quadrant)
        part = _image_part(ctx, i, img)
        kind = i % 3
        if kind == 0:
            q, correct, pool = "What colour is the shape in the image?", colour, list(COLOURS)
        elif kind == 1:
            q, correct, pool = "Which shape is shown in the image?", shape, list(SHAPES)
        else:
            q, correct, pool = "Where in the image is the shape?", quadrant, list(QUADRANTS)
        opts = _options(ctx.rng, correct, pool, int(letters[i]))
        rows.append(_row(ctx, i, [part], _options_text(q, opts), "multiple-choice",
                         LETTERS[int(letters[i])], {"options": opts}))
    return rows


@task("chart_math")
def _chart_math(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    from PIL import ImageDraw

    s = max(ctx.image_size, 56)
    names = list(COLOURS)[:4]
    rows = []
    for i in range(n):
        nbars = 2 + int(ctx.rng.integers(0, 2))
        heights = [int(h) for h in ctx.rng.choice(np.arange(1, 7), size=nbars, replace=False)]
        colours = [names[j] for j in ctx.rng.permutation(len(names))[:nbars]]
        img = _new_image(s, s)
        d = ImageDraw.Draw(img)
        top, bottom, left, right = 4, s - 4, 4, s - 4
        unit = (bottom - top) / 7
        for level in range(1, 8):  # grid line per unit: heights are readable
            y = round(bottom - level * unit)
            d.line([(left, y), (right, y)], fill=(200, 200, 200))
        d.line([(left, bottom), (right, bottom)], fill=(0, 0, 0))
        slot = (right - left) / nbars
        for j, (h, c) in enumerate(zip(heights, colours)):
            x1 = round(left + j * slot + slot * 0.2)
            x2 = round(left + (j + 1) * slot - slot * 0.2)
            d.rectangle([x1, round(bottom - h * unit), x2, bottom], fill=COLOURS[c])
        part = _image_part(ctx, i, img)
        if i % 2 == 0:
            q = (f"The bar chart has {nbars} bars; grey grid lines mark heights 1 to 7. "
                 "How tall is the tallest bar?")
            ans = max(heights)
        else:
            a, b = ctx.rng.permutation(nbars)[:2]
            q = (f"The bar chart has {nbars} bars; grey grid lines mark heights 1 to 7. What is the sum of the "
                 f"heights of the {colours[a]} bar and the {colours[b]} bar?")
            ans = heights[a] + heights[b]
        rows.append(_row(ctx, i, [part], q, "mathruler", str(ans)))
    return rows


@task("word_read")
def _word_read(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    from PIL import ImageDraw, ImageFont

    s = ctx.image_size
    try:
        font = ImageFont.load_default(size=max(10, s // 4))
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    words = _balanced(ctx.rng, n, len(WORDS))
    rows = []
    for i in range(n):
        word = WORDS[int(words[i])]
        img = _new_image(s, s)
        d = ImageDraw.Draw(img)
        x1, y1, x2, y2 = d.textbbox((0, 0), word, font=font)
        tw, th = x2 - x1, y2 - y1
        ox = int(ctx.rng.integers(0, max(1, s - tw))) - x1
        oy = int(ctx.rng.integers(0, max(1, s - th))) - y1
        d.text((ox, oy), word, fill=(0, 0, 0), font=font)
        part = _image_part(ctx, i, img)
        rows.append(_row(ctx, i, [part], "What word is written in the image?",
                         "string-match", word))
    return rows


@task("gui_click")
def _gui_click(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    from PIL import ImageDraw

    h = ctx.image_size
    w = 2 * ctx.image_size  # a wide "screen": pixel and normalised coordinates differ per axis
    names = list(COLOURS)
    rows = []
    for i in range(n):
        img = _new_image(w, h, (240, 240, 240))
        d = ImageDraw.Draw(img)
        bar = max(4, h // 8)
        d.rectangle([0, 0, w - 1, bar], fill=(60, 60, 70))  # title bar
        for _ in range(3):  # grey text lines (distractors)
            y = int(ctx.rng.integers(bar + 2, h - 2))
            x = int(ctx.rng.integers(0, w // 2))
            d.line([(x, y), (x + int(ctx.rng.integers(5, w // 2)), y)], fill=(170, 170, 170))
        bw = int(ctx.rng.integers(max(6, w // 8), max(7, w // 4)))
        bh = int(ctx.rng.integers(max(5, h // 8), max(6, h // 4)))
        x1 = int(ctx.rng.integers(0, w - bw))
        y1 = int(ctx.rng.integers(bar + 1, h - bh))
        x2, y2 = x1 + bw - 1, y1 + bh - 1
        colour = names[i % len(names)]
        d.rectangle([x1, y1, x2, y2], fill=COLOURS[colour])
        part = _image_part(ctx, i, img)
        if i % 2 == 0:
            space = (f"Give the click point in pixel coordinates of this {w}x{h} image "
                     f"((0, 0) is the top-left corner) as (x, y).")
            answer = [x1, y1, x2, y2]
            kwargs: dict[str, Any] = {"coord_space": "pixel", "image_size": [w, h]}
        else:
            space = ("Give the click point in coordinates normalised to 0-1000 ((0, 0) is the top-left corner, "
                     "(1000, 1000) the bottom-right) as (x, y).")
            answer = [round(x1 / w * 1000), round(y1 / h * 1000), round((x2 + 1) / w * 1000),
                      round((y2 + 1) / h * 1000)]
            kwargs = {"coord_space": "norm1000"}
        rows.append(_row(ctx, i, [part], f"Click the {colour} button. {space}",
                         "gui-coordinate", answer, kwargs))
    return rows


GUI_ROWS = 2  # gui_button: button slots down the screen's sidebar


@task("gui_button")
def _gui_button(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Click the one button of a square screen, answering in the 0-1000 normalised space (gui-coordinate, with its
    smooth distance decay). The screen has a grey title bar, grey text lines (distractors) and a sidebar of `GUI_ROWS`
    button slots stacked vertically (balanced); the button is centred on its slot, its width and height vary by up to
    20%. A click on the button scores 1; off it, the reward decays with the distance to the button's edge and reaches
    0 at 0.15 of the screen (a click on the other slot scores 0). Slots are stacked, not side by side: the tiny omni
    model resolves rows of image tokens but not columns (docs/data.md)."""
    from PIL import ImageDraw

    s = ctx.image_size
    slots = _balanced(ctx.rng, n, GUI_ROWS)
    rows = []
    for i in range(n):
        img = _new_image(s, s, (240, 240, 240))
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, s - 1, max(2, s // 16)], fill=(60, 60, 70))  # title bar
        for _ in range(3):
            y, x = int(ctx.rng.integers(s // 8, s - 2)), int(ctx.rng.integers(0, s // 2))
            d.line([(x, y), (x + int(ctx.rng.integers(5, s // 2)), y)], fill=(170, 170, 170))
        fw, fh = (1.0 + 0.2 * float(v) for v in ctx.rng.uniform(-1, 1, size=2))
        half_w, half_h = s * 0.3 * fw, s / GUI_ROWS * 0.15 * fh
        cx, cy = s / 2, (int(slots[i]) + 0.5) * s / GUI_ROWS
        x1, y1, x2, y2 = round(cx - half_w), round(cy - half_h), round(cx + half_w) - 1, round(cy + half_h) - 1
        d.rectangle([x1, y1, x2, y2], fill=COLOURS["red"])
        part = _image_part(ctx, i, img)
        answer = [round(x1 / s * 1000), round(y1 / s * 1000), round((x2 + 1) / s * 1000), round((y2 + 1) / s * 1000)]
        rows.append(_row(ctx, i, [part], "Click the red button. Give the click point in coordinates normalised to "
                         "0-1000 ((0, 0) is the top-left corner, (1000, 1000) the bottom-right) as (x, y).",
                         "gui-coordinate", answer, {"coord_space": "norm1000"}))
    return rows


@task("image_colour")
def _image_colour(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Name the shape's colour (a free-form word, string-match): a direct image -> word mapping."""
    from PIL import ImageDraw

    colours = _balanced(ctx.rng, n, len(COLOURS))
    rows = []
    for i in range(n):
        colour = list(COLOURS)[int(colours[i])]
        img = _new_image(ctx.image_size, ctx.image_size)
        lo, hi = int(ctx.image_size * 0.05), int(ctx.image_size * 0.95)  # a large shape: colour in every image token
        _draw_shape(ImageDraw.Draw(img), str(ctx.rng.choice(SHAPES)), (lo, lo, hi, hi), COLOURS[colour])
        part = _image_part(ctx, i, img)
        rows.append(_row(ctx, i, [part],
                         f"What colour is the shape? Answer with one of: {', '.join(COLOURS)}.", "string-match",
                         colour))
    return rows


@task("image_shape")
def _image_shape(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Multiple choice: which shape fills the image (any colour), the four shapes always listed in the same order
    (A circle ... D diamond), so the letter is a direct function of the shape."""
    from PIL import ImageDraw

    shapes = _balanced(ctx.rng, n, len(SHAPES))
    opts = {LETTERS[j]: s for j, s in enumerate(SHAPES)}
    lo, hi = int(ctx.image_size * 0.05), int(ctx.image_size * 0.95)
    rows = []
    for i in range(n):
        img = _new_image(ctx.image_size, ctx.image_size)
        _draw_shape(ImageDraw.Draw(img), SHAPES[int(shapes[i])], (lo, lo, hi, hi),
                    COLOURS[str(ctx.rng.choice(list(COLOURS)))])
        part = _image_part(ctx, i, img)
        rows.append(_row(ctx, i, [part], _options_text("Which shape is shown in the image?", opts),
                         "multiple-choice", LETTERS[int(shapes[i])], {"options": opts}))
    return rows


@task("image_position")
def _image_position(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Multiple choice with the four quadrants always listed in the same order (A top-left ... D bottom-right), so
    the letter is a direct function of where the shape is (unlike image_mcq, whose shuffled options need a lookup)."""
    where = _balanced(ctx.rng, n, len(QUADRANTS))
    opts = {LETTERS[j]: q for j, q in enumerate(QUADRANTS)}
    rows = []
    for i in range(n):
        img = _shape_image(ctx, str(ctx.rng.choice(SHAPES)), str(ctx.rng.choice(list(COLOURS))),
                           QUADRANTS[int(where[i])])
        part = _image_part(ctx, i, img)
        rows.append(_row(ctx, i, [part],
                         _options_text("Where in the image is the shape?", opts), "multiple-choice",
                         LETTERS[int(where[i])], {"options": opts}))
    return rows


@task("image_count")
def _image_count(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Count 1-4 shapes, each in its own quadrant (mathruler)."""
    from PIL import ImageDraw

    counts = _balanced(ctx.rng, n, 4) + 1
    s = ctx.image_size
    half, size = s // 2, max(6, int(s * 0.3))
    rows = []
    for i in range(n):
        img = _new_image(s, s)
        d = ImageDraw.Draw(img)
        for q in ctx.rng.permutation(4)[: int(counts[i])]:
            ox = (q % 2) * half + 1 + int(ctx.rng.integers(0, max(1, half - size - 1)))
            oy = (q // 2) * half + 1 + int(ctx.rng.integers(0, max(1, half - size - 1)))
            _draw_shape(d, str(ctx.rng.choice(SHAPES)), (ox, oy, ox + size, oy + size),
                        COLOURS[str(ctx.rng.choice(list(COLOURS)))])
        part = _image_part(ctx, i, img)
        rows.append(_row(ctx, i, [part], "How many shapes are in the image?", "mathruler",
                         str(int(counts[i]))))
    return rows


@task("video_motion")
def _video_motion(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    s = ctx.image_size + (ctx.image_size % 2)
    directions = ("left", "right", "up", "down")
    letters = _balanced(ctx.rng, n, 4)
    rows = []
    for i in range(n):
        direction = directions[int(ctx.rng.integers(0, 4))]
        r = max(3, s // 10)
        travel = s - 4 * r
        across = float(2 * r + ctx.rng.random() * (s - 4 * r))  # the fixed coordinate
        colour = np.array(COLOURS[str(ctx.rng.choice(list(COLOURS)))], np.uint8)
        frames = np.full((8, s, s, 3), 245, np.uint8)
        yy, xx = np.mgrid[0:s, 0:s]
        for f in range(8):
            along = 2 * r + travel * f / 7
            if direction in ("right", "down"):
                pos = along
            else:
                pos = s - along
            cx, cy = (pos, across) if direction in ("left", "right") else (across, pos)
            frames[f][(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = colour
        path, rel = ctx.media_path(i, "mp4")
        write_mp4(path, frames)
        opts = _options(ctx.rng, direction, directions, int(letters[i]))
        rows.append(_row(ctx, i, [{"type": "video", "video": rel}],
                         _options_text("In which direction does the dot move?", opts), "multiple-choice",
                         LETTERS[int(letters[i])], {"options": opts}))
    return rows


@task("video_flash")
def _video_flash(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    counts = _balanced(ctx.rng, n, 3) + 1
    rows = []
    for i in range(n):
        path, rel = ctx.media_path(i, "mp4")
        write_mp4(path, _flash_frames(ctx, int(counts[i])))
        rows.append(_row(ctx, i, [{"type": "video", "video": rel}],
                         "How many times does the screen flash in the video?", "mathruler", str(int(counts[i]))))
    return rows


@task("audio_pitch")
def _audio_pitch(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Three pitches (a two-option task starts at chance 0.5 and a policy that ignores the audio loses little)."""
    pitches = _balanced(ctx.rng, n, len(PITCHES))
    letters = _balanced(ctx.rng, n, len(PITCHES))
    names = [name for name, _ in PITCHES]
    rows = []
    for i in range(n):
        name, freq = PITCHES[int(pitches[i])]
        wav = _tone(freq, 1.0, amp=0.3 + 0.3 * float(ctx.rng.random()))
        path, rel = ctx.media_path(i, "wav")
        write_wav(path, wav)
        opts = _options(ctx.rng, name, names, int(letters[i]), k=len(PITCHES))
        rows.append(_row(ctx, i, [{"type": "audio", "audio": rel}],
                         _options_text("What do you hear in the audio?", opts), "multiple-choice",
                         LETTERS[int(letters[i])], {"options": opts}))
    return rows


@task("audio_beeps")
def _audio_beeps(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    counts = _balanced(ctx.rng, n, 3) + 1
    rows = []
    for i in range(n):
        path, rel = ctx.media_path(i, "wav")
        write_wav(path, _beeps(ctx.rng, int(counts[i])))
        rows.append(_row(ctx, i, [{"type": "audio", "audio": rel}], "How many beeps are in the audio?",
                         "mathruler", str(int(counts[i]))))
    return rows


@task("asr_words")
def _asr_words(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    vocab = list(ASR_VOCAB)
    legend = ", ".join(f"{int(f)} Hz = {w}" for w, f in ASR_VOCAB.items())
    lengths = _balanced(ctx.rng, n, 3) + 1
    rows = []
    for i in range(n):
        words = [vocab[int(j)] for j in ctx.rng.integers(0, len(vocab), size=int(lengths[i]))]
        gap = np.zeros(int(0.1 * AUDIO_SR), np.float32)
        pieces = [gap]
        for w in words:
            pieces += [_tone(ASR_VOCAB[w], 0.3, amp=0.5), gap]
        path, rel = ctx.media_path(i, "wav")
        write_wav(path, np.concatenate(pieces))
        q = (f"The audio spells out 1 to 3 words in a tone code: each word is a 0.3 s tone ({legend}), words are "
             "separated by short silences. Transcribe the words in order, separated by spaces.")
        rows.append(_row(ctx, i, [{"type": "audio", "audio": rel}], q, "asr", " ".join(words)))
    return rows


@task("omni_av")
def _omni_av(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    pairs = _balanced(ctx.rng, n, 9)
    rows = []
    for i in range(n):
        flashes, beeps = int(pairs[i]) // 3 + 1, int(pairs[i]) % 3 + 1
        vpath, vrel = ctx.media_path(i, "mp4")
        write_mp4(vpath, _flash_frames(ctx, flashes), audio=_beeps(ctx.rng, beeps, seconds=3.0))
        q = ("Count the flashes in the video and the beeps in its soundtrack. "
             "What is the number of flashes plus the number of beeps?")
        rows.append(_row(ctx, i, [{"type": "video", "video": vrel, "use_audio": True}], q, "mathruler",
                         str(flashes + beeps)))
    return rows


@task("text_math")
def _text_math(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        a, b = (int(x) for x in ctx.rng.integers(0, 21, size=2))
        rows.append(_row(ctx, i, [], f"What is {a} + {b}?", "mathruler", str(a + b)))
    return rows


@task("unanswerable")
def _unanswerable(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    objs = _balanced(ctx.rng, n, len(ABSENT_OBJECTS))
    rows = []
    for i in range(n):
        img = _shape_image(ctx, str(ctx.rng.choice(SHAPES)), str(ctx.rng.choice(list(COLOURS))),
                           str(ctx.rng.choice(QUADRANTS)))
        part = _image_part(ctx, i, img)
        q = (f"What colour is the {ABSENT_OBJECTS[int(objs[i])]} in the image? If the image does not show it, "
             "answer unanswerable.")
        rows.append(_row(ctx, i, [part], q, "string-match", None, unanswerable=True))
    return rows


@task("mismatch")
def _mismatch(ctx: TaskContext, n: int) -> list[dict[str, Any]]:
    """Image/text mismatch: the question asks the colour of a shape the image does not show (a large circle, asked
    about the triangle), phrased like image_colour's question; the right response abstains (no gold answer)."""
    from PIL import ImageDraw

    asked = _balanced(ctx.rng, n, len(SHAPES))
    lo, hi = int(ctx.image_size * 0.05), int(ctx.image_size * 0.95)
    rows = []
    for i in range(n):
        shown = [s for s in SHAPES if s != SHAPES[int(asked[i])]][int(ctx.rng.integers(0, len(SHAPES) - 1))]
        img = _new_image(ctx.image_size, ctx.image_size)
        _draw_shape(ImageDraw.Draw(img), shown, (lo, lo, hi, hi), COLOURS[str(ctx.rng.choice(list(COLOURS)))])
        part = _image_part(ctx, i, img)
        q = f"What colour is the {SHAPES[int(asked[i])]} in the image? Answer with one of: {', '.join(COLOURS)}."
        rows.append(_row(ctx, i, [part], q, "string-match", None, unanswerable=True))
    return rows


# ---------------------------------------------------------------------------------------------------------- suite
def _manifest(tasks: list[str], n_per_task: int, seed: int, image_size: int) -> dict[str, Any]:
    return {"generator_version": GENERATOR_VERSION, "tasks": list(tasks), "n_per_task": int(n_per_task),
            "seed": int(seed), "image_size": int(image_size)}


def _matches(out_dir: Path, want: dict[str, Any]) -> bool:
    try:
        have = json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (out_dir / "train.jsonl").is_file() and {k: have.get(k) for k in want} == want


def generate_suite(out_dir: str | os.PathLike, *, tasks: list[str] | None = None, n_per_task: int = 64,
                   seed: int = 0, image_size: int = 56) -> Path:
    """Write the suite (or find it already written) and return the path of its `train.jsonl`."""
    out_dir = Path(out_dir)
    tasks = list(TASKS) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown synthetic tasks {unknown}; known: {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"duplicate tasks in {tasks}")
    if n_per_task < 1 or image_size < 16:
        raise ValueError("n_per_task must be >= 1 and image_size >= 16")
    want = _manifest(tasks, n_per_task, seed, image_size)
    if _matches(out_dir, want):
        return out_dir / "train.jsonl"
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise FileExistsError(f"{out_dir} exists, is not empty and is not a synthetic suite: refusing to replace it")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        counts: dict[str, int] = {}
        with open(tmp / "train.jsonl", "w", encoding="utf-8") as f:
            for name in tasks:
                rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
                rows = TASKS[name](TaskContext(out_dir=tmp, task=name, rng=rng, image_size=image_size), n_per_task)
                counts[name] = len(rows)
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (tmp / "manifest.json").write_text(json.dumps({**want, "counts": counts, "video_fps": VIDEO_FPS,
                                                       "audio_sr": AUDIO_SR}, indent=2) + "\n")
        _install(tmp, out_dir, want)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "train.jsonl"


def _install(tmp: Path, out_dir: Path, want: dict[str, Any]) -> None:
    """Rename tmp -> out_dir; an old suite (other parameters) is moved aside first and deleted after."""
    old = None
    if out_dir.exists():
        if _matches(out_dir, want):  # a concurrent writer finished first
            return
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{tmp.name[-8:]}"
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if not _matches(out_dir, want):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omni_rl.data.synthetic",
                                     description="Generate the synthetic omni-modal task suite (train.jsonl + media).")
    parser.add_argument("--out", required=True, help="output directory (train.jsonl, manifest.json, media/)")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=None, metavar="TASK",
                        help=f"tasks to generate (default: all): {', '.join(TASKS)}")
    parser.add_argument("--n-per-task", type=int, default=64, help="rows per task (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=int, default=56, help="image/video side in pixels (default 56)")
    args = parser.parse_args(argv)
    path = generate_suite(args.out, tasks=args.tasks, n_per_task=args.n_per_task, seed=args.seed,
                          image_size=args.image_size)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    for name, c in manifest["counts"].items():
        print(f"{name:14s} {c}")
    print(f"{'total':14s} {sum(manifest['counts'].values())}  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
