"""Media decoding: images (PIL, RGB), video (PyAV -> uint8 [F, H, W, 3] sampled at a chosen fps), audio (soundfile +
soxr -> float32 mono at 16 kHz).

Every decoder raises `MediaError` for a file that is missing (`.missing` is True; the subclass `MissingMediaError`)
or cannot be decoded, with a short `.reason` ("missing media" / "corrupt media") and a `.detail`, so the dataset
loader rejects the row instead of a training step crashing later. Decoders really decode: a truncated PNG or a file of
garbage bytes fails here. PyAV ships its own FFmpeg: video decoding does not depend on torchvision / torchcodec (whose
PyPI builds are CUDA-only). Decoders are imported on first use, so importing this module is cheap.

API note (two call styles are supported on purpose): `load_video` returns a `Video`, which IS the uint8 frame array
(an `np.ndarray` subclass) and also carries `.fps` (the rate the frames were sampled at) and `.frames` (a plain
ndarray view); `load_audio` takes the target rate as `sr=` or `sample_rate=`; `probe_media(path, kind)` and
`check_media(kind, path)` are the same check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .types import MEDIA_KINDS

AUDIO_SR = 16000


class MediaError(ValueError):
    """A media file that is missing or cannot be decoded. `reason` is short and stable (used as the reject reason),
    `detail` says what failed."""

    def __init__(self, reason: str, detail: str = "", *, missing: bool = False):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.missing = missing


class MissingMediaError(MediaError):
    """The file does not exist (or is not a regular file)."""

    def __init__(self, detail: str = ""):
        super().__init__("missing media", detail, missing=True)


class Video(np.ndarray):
    """Sampled frames, uint8 [F, H, W, 3] with F even, that also carry `fps`: the rate they were sampled at (what
    Qwen-style processors take as `fps` for temporal position ids)."""

    fps: float

    def __new__(cls, frames: np.ndarray, fps: float) -> Video:
        obj = np.asarray(frames, dtype=np.uint8).view(cls)
        obj.fps = float(fps)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.fps = getattr(obj, "fps", float("nan"))

    @property
    def frames(self) -> np.ndarray:
        return self.view(np.ndarray)

    def __reduce__(self) -> Any:  # keep fps through pickle (Ray, multiprocessing)
        return (Video, (np.asarray(self.frames).copy(), self.fps))


def _existing(path: str | Path, kind: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MissingMediaError(f"{kind} file {p} does not exist" if not p.exists() else f"{p} is not a file")
    if p.stat().st_size == 0:
        raise MediaError("corrupt media", f"{kind} file {p.name} is empty")
    return p


def load_image(path: str | Path) -> Any:
    """The image as a fully decoded RGB `PIL.Image` (palette / grey converted, alpha composited on white). Truncated
    files raise even when PIL's global `LOAD_TRUNCATED_IMAGES` is set (checked with `verify()`, which never pads)."""
    from PIL import Image

    p = _existing(path, "image")
    try:
        with Image.open(p) as im:
            im.verify()  # structure + chunk CRCs: a truncated file fails here whatever LOAD_TRUNCATED_IMAGES says
        with Image.open(p) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                out = Image.new("RGB", rgba.size, (255, 255, 255))
                out.paste(rgba, mask=rgba.getchannel("A"))
                return out
            return im.convert("RGB")
    except Exception as e:  # noqa: BLE001 -- PIL raises many types (OSError, SyntaxError, ValueError, zlib.error ...)
        raise MediaError("corrupt media", f"cannot decode image {p.name}: {type(e).__name__}: {e}") from e


def _decode_frames(path: str | Path) -> tuple[list[Any], list[float], float]:
    """Every frame of the first video stream, still as `av.VideoFrame` (converted to RGB only when kept), their
    timestamps in seconds and the stream's average frame rate. Decodes the whole stream, so a corrupt file fails."""
    import av

    p = _existing(path, "video")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise MediaError("corrupt media", f"no video stream in {p.name}")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate) if stream.average_rate else 0.0
            frames, times = [], []
            for i, frame in enumerate(container.decode(stream)):
                frames.append(frame)
                times.append(float(frame.time) if frame.time is not None else (i / rate if rate else float(i)))
    except MediaError:
        raise
    except Exception as e:  # noqa: BLE001 -- FFmpeg errors come in many classes
        raise MediaError("corrupt media", f"cannot decode video {p.name}: {type(e).__name__}: {e}") from e
    if not frames:
        raise MediaError("corrupt media", f"no decodable frames in video {p.name}")
    if rate <= 0:
        span = times[-1] - times[0]
        rate = (len(frames) - 1) / span if span > 0 and len(frames) > 1 else 1.0
    return frames, times, rate


def even_frame_cap(max_frames: int) -> int:
    """The largest even frame count <= max_frames, at least 2."""
    return max(2, int(max_frames) - int(max_frames) % 2)


def sample_frame_indices(times: list[float], native_fps: float, *, fps: float, max_frames: int
                         ) -> tuple[list[int], float]:
    """Indices of the frames to keep (F even, F <= even_frame_cap(max_frames)) and the resulting sampling rate.

    One frame every 1/`fps` seconds from the first (the decoded frame nearest each target time; every frame when the
    native rate is <= `fps`; a frame is never taken twice). If that is more than the cap, cap frames spread evenly
    over the clip. An odd count repeats the last frame: Qwen-style encoders fuse 2 frames per temporal patch."""
    n = len(times)
    cap = even_frame_cap(max_frames)
    duration = max(times[-1] - times[0] + 1.0 / native_fps, 1e-6)  # the last frame lasts one native frame
    if native_fps <= fps or n == 1:
        idx = list(range(n))
    else:
        ts = np.asarray(times, dtype=float)
        targets = times[0] + np.arange(max(1, int(math.floor(duration * fps + 1e-6)))) / fps
        pos = np.clip(np.searchsorted(ts, targets), 1, n - 1)
        nearest = np.where(np.abs(targets - ts[pos - 1]) <= np.abs(ts[pos] - targets), pos - 1, pos)
        idx = sorted(set(int(i) for i in nearest))
    if len(idx) > cap:
        idx = [int(round(x)) for x in np.linspace(0, n - 1, cap)]
    rate = len(idx) / duration
    if len(idx) % 2:
        idx.append(idx[-1])
    return idx, rate


def load_video(path: str | Path, *, fps: float, max_frames: int) -> Video:
    """Frames sampled at `fps` (see `sample_frame_indices`): a `Video`, i.e. uint8 [F, H, W, 3] with F even, plus
    `.fps`, the rate they were sampled at."""
    if fps <= 0 or max_frames < 1:
        raise ValueError(f"need fps > 0 and max_frames >= 1, got fps={fps}, max_frames={max_frames}")
    frames, times, native = _decode_frames(path)
    order = sorted(range(len(times)), key=times.__getitem__)  # presentation order
    frames, times = [frames[i] for i in order], [times[i] for i in order]
    idx, rate = sample_frame_indices(times, native, fps=fps, max_frames=max_frames)
    try:
        rgb = {i: frames[i].to_ndarray(format="rgb24") for i in set(idx)}
    except Exception as e:  # noqa: BLE001
        raise MediaError("corrupt media", f"cannot convert frames of {Path(path).name}: {type(e).__name__}: {e}")
    return Video(np.stack([rgb[i] for i in idx]), rate)


def load_audio(path: str | Path, *, sr: int | None = AUDIO_SR, sample_rate: int | None = None) -> np.ndarray:
    """The waveform as float32 mono (channels averaged), resampled with soxr to `sr` (alias `sample_rate`, which
    wins when given; None keeps the file's own rate). Formats libsndfile cannot read (m4a/aac, the audio track of an
    mp4) are decoded with PyAV."""
    import soundfile as sf

    target = sample_rate if sample_rate is not None else sr
    p = _existing(path, "audio")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
        mono = data.mean(axis=1, dtype=np.float32)
    except Exception as e_sf:  # noqa: BLE001 -- libsndfile errors: try FFmpeg
        try:
            mono, file_sr = _decode_audio_av(p)
        except MediaError:  # FFmpeg opened it and says what is wrong (e.g. a video without an audio track)
            raise
        except Exception as e_av:  # noqa: BLE001
            raise MediaError("corrupt media", f"cannot decode audio {p.name}: soundfile: {type(e_sf).__name__}: "
                             f"{e_sf}; av: {type(e_av).__name__}: {e_av}") from e_av
    if mono.shape[0] == 0:
        raise MediaError("corrupt media", f"cannot decode audio {p.name}: no samples")
    if not np.isfinite(mono).all():
        raise MediaError("corrupt media", f"audio {p.name} contains NaN/inf samples")
    if target is not None and int(file_sr) != int(target):
        import soxr

        mono = soxr.resample(mono, int(file_sr), int(target), quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _decode_audio_av(p: Path) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(p)) as container:
        if not container.streams.audio:
            raise MediaError("corrupt media", f"no audio stream in {p.name}")
        stream = container.streams.audio[0]
        file_sr = int(stream.rate or stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=file_sr)
        for frame in container.decode(stream):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return (np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)), file_sr


def probe_media(path: str | Path, kind: str) -> None:
    """Decode the file fully with the decoder training uses; raise `MediaError` if it is missing or unreadable."""
    if kind == "image":
        load_image(path)
    elif kind == "video":
        _decode_frames(path)
    elif kind == "audio":
        load_audio(path, sr=None)
    else:
        raise ValueError(f"unknown media kind {kind!r}; known: {', '.join(MEDIA_KINDS)}")


def check_media(kind: str, path: str | Path) -> None:
    """`probe_media` with the arguments the other way round."""
    probe_media(path, kind)


def nbytes(item: Any) -> int:
    """Bytes held by one decoded media item (PIL image, Video / frame array, waveform)."""
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    width, height = item.size  # PIL image
    return int(width * height * len(item.getbands()))
