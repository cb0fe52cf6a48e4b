import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omni_rl.data.media import (MediaError, MissingMediaError, Video, check_media, load_audio, load_image, load_video,
                                nbytes)
from omni_rl.data.synthetic import write_mp4


def _png(path, size=(20, 10), mode="RGB"):
    Image.new(mode, size, (10, 200, 30, 255)[: len(mode)]).save(path)
    return path


def _video(path, n=16, fps=4, h=32, w=48):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i] = i * 12  # frame brightness encodes its index
    write_mp4(path, frames, fps=fps)
    return path


def test_load_image_rgb(tmp_path):
    img = load_image(_png(tmp_path / "a.png"))
    assert img.mode == "RGB" and img.size == (20, 10)
    rgba = load_image(_png(tmp_path / "b.png", mode="RGBA"))
    assert rgba.mode == "RGB"
    gray = load_image(_png(tmp_path / "c.png", mode="L"))
    assert gray.mode == "RGB"


def test_image_errors(tmp_path):
    with pytest.raises(MissingMediaError, match="does not exist") as e:
        load_image(tmp_path / "nope.png")
    assert e.value.missing and e.value.reason == "missing media"
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image" * 10)
    with pytest.raises(MediaError, match="cannot decode image"):
        load_image(garbage)
    good = _png(tmp_path / "good.png", size=(64, 64))
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:60])
    with pytest.raises(MediaError):
        load_image(trunc)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_image(empty)
    assert isinstance(MediaError("x", "y"), ValueError)


def test_truncated_png_rejected_even_with_load_truncated_images(tmp_path):
    from PIL import ImageFile

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    data = (tmp_path / "n.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(MediaError):
            load_image(tmp_path / "t.png")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def test_video_shape_and_fps_sampling(tmp_path):
    p = _video(tmp_path / "v.mp4", n=16, fps=4)  # 4 s
    video = load_video(p, fps=4, max_frames=64)
    assert isinstance(video, Video) and video.fps == pytest.approx(4.0)
    v = video.frames
    assert isinstance(video, np.ndarray) and video.shape == v.shape and type(v) is np.ndarray
    assert nbytes(video) == v.nbytes
    import pickle

    back = pickle.loads(pickle.dumps(video))
    assert back.fps == video.fps and np.array_equal(back, video)
    assert v.dtype == np.uint8 and v.shape == (16, 32, 48, 3)
    video2 = load_video(p, fps=2, max_frames=64)  # every other frame
    assert video2.fps == pytest.approx(2.0)
    v2 = video2.frames
    assert v2.shape[0] == 8
    brightness = v2.reshape(8, -1).mean(1)
    assert np.allclose(brightness, np.arange(0, 16, 2) * 12, atol=4)
    v3 = load_video(p, fps=100, max_frames=64).frames  # never above the native rate, no duplicates
    assert v3.shape[0] == 16


def test_video_max_frames_and_even(tmp_path):
    p = _video(tmp_path / "v.mp4", n=16, fps=4)
    v = load_video(p, fps=4, max_frames=6).frames  # spread over the whole video
    assert v.shape[0] == 6
    b = v.reshape(6, -1).mean(1)
    assert b[0] < 10 and b[-1] > 120 and np.all(np.diff(b) > 0)
    assert load_video(p, fps=4, max_frames=5).frames.shape[0] == 4  # odd cap -> even
    p3 = _video(tmp_path / "v3.mp4", n=3, fps=4)
    v3 = load_video(p3, fps=4, max_frames=64).frames
    assert v3.shape[0] == 4 and np.array_equal(v3[3], v3[2])  # padded by repeating the last frame
    p1 = _video(tmp_path / "v1.mp4", n=1, fps=4)
    assert load_video(p1, fps=2, max_frames=8).frames.shape[0] == 2


def test_video_errors(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="video"):
        load_video(bad, fps=2, max_frames=8)
    with pytest.raises(MissingMediaError):
        load_video(tmp_path / "missing.mp4", fps=2, max_frames=8)
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(MediaError):
        load_video(tmp_path / "a.wav", fps=2, max_frames=8)  # no video stream


def test_audio_resample_stereo_to_mono(tmp_path):
    sr = 44100
    t = np.arange(sr * 2) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.wav", stereo, sr)
    a = load_audio(tmp_path / "s.wav", sample_rate=16000)
    assert a.dtype == np.float32 and a.ndim == 1
    assert abs(len(a) - 32000) <= 2
    assert 0.6 < np.abs(a[1000:-1000]).max() < 0.8  # channels averaged: 0.75 peak
    assert np.array_equal(load_audio(tmp_path / "s.wav", sr=16000), a)  # both keyword spellings
    native = load_audio(tmp_path / "s.wav", sr=None)
    assert len(native) == 2 * sr
    sf.write(tmp_path / "m.flac", np.zeros(8000, np.float32), 8000)
    assert len(load_audio(tmp_path / "m.flac")) == 16000


def test_audio_errors(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\x00" * 10 + b"garbage" * 20)
    with pytest.raises(MediaError, match="cannot decode audio"):
        load_audio(bad)
    with pytest.raises(MissingMediaError):
        load_audio(tmp_path / "none.wav")


def test_check_media(tmp_path):
    check_media("image", _png(tmp_path / "a.png"))
    check_media("video", _video(tmp_path / "v.mp4"))
    with pytest.raises(MediaError):
        check_media("audio", tmp_path / "a.png")
    with pytest.raises(ValueError):
        check_media("hologram", tmp_path / "a.png")
    v = tmp_path / "v.mp4"
    (tmp_path / "cut.mp4").write_bytes(v.read_bytes()[: v.stat().st_size // 3])
    with pytest.raises(MediaError):
        check_media("video", tmp_path / "cut.mp4")


def test_audio_track_of_mp4_via_pyav(tmp_path):
    import av

    with av.open(str(tmp_path / "a.m4a"), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=22050)
        s.layout = "mono"
        samples = (0.3 * np.sin(np.arange(22050) / 22050 * 2 * np.pi * 440)).astype(np.float32)[None]
        for i in range(0, 22050, 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i:i + 1024]), format="flt", layout="mono")
            fr.sample_rate = 22050
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    a = load_audio(tmp_path / "a.m4a")
    assert a.dtype == np.float32 and abs(len(a) - 16000) < 1600
