"""render_prompt: chat template + HF processor -> expanded prompt_ids, media tensors, and vLLM inputs whose
placeholders expand to exactly prompt_ids (the expansion itself is checked against vLLM in
tests/models/test_vllm_parity.py; here: structure, counts, bytes, kwargs)."""

from __future__ import annotations

import numpy as np
import pytest

from omni_rl.data.render import media_parts, render_prompt
from omni_rl.data.types import Sample


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from omni_rl.models import build_tiny_model

    cache = tmp_path_factory.mktemp("models")
    return {f: build_tiny_model(f, cache) for f in ("text", "omni", "vl")}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    import av
    import soundfile as sf
    from PIL import Image

    root = tmp_path_factory.mktemp("media")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(root / "a.png")
    sf.write(root / "a.wav", np.zeros(16000, np.float32), 16000)  # 1 s
    with av.open(str(root / "v.mp4"), "w") as c:  # 12 frames at 4 fps = 3 s
        s = c.add_stream("mpeg4", rate=4)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(12):
            frame = np.full((64, 64, 3), 20 * i, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return root


def _sample(parts, text="Q?"):
    return Sample(id="r", source="s", messages=[{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": [*parts, {"type": "text", "text": text}]}],
                  verifier="string-match", answer="x")


def _load(path):
    from omni_rl.models import load_processor, resolve_family

    return load_processor(path, resolve_family(path))


def test_text_prompt(dirs):
    tok = _load(dirs["text"])
    sample = _sample([])
    p = render_prompt(sample, tok, enable_thinking=True, video_fps=2.0, video_max_frames=8)
    text = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"
    assert p.prompt_ids == tok(text, add_special_tokens=False)["input_ids"]
    assert p.vllm_inputs == {"prompt_token_ids": p.prompt_ids} and p.mm_tensors == {} and p.media_bytes == 0
    off = render_prompt(sample, tok, enable_thinking=False, video_fps=2.0, video_max_frames=8)
    assert tok.decode(off.prompt_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert p.sample is sample


def test_omni_image_audio_video(dirs, media):
    proc = _load(dirs["omni"])
    tok = proc.tokenizer
    parts = [{"type": "image", "image": str(media / "a.png")}, {"type": "audio", "audio": str(media / "a.wav")},
             {"type": "video", "video": str(media / "v.mp4")}]
    sample = _sample(parts)
    assert media_parts(sample.messages) == [("image", str(media / "a.png")), ("audio", str(media / "a.wav")),
                                            ("video", str(media / "v.mp4"))]
    p = render_prompt(sample, proc, enable_thinking=True, video_fps=2.0, video_max_frames=8)
    ids = {k: tok.convert_tokens_to_ids(getattr(tok, f"{k}_token")) for k in ("image", "audio", "video")}
    # 64x64 -> 4 tokens; 1 s audio = 100 mel frames -> 50 -> 25 tokens; 3 s at 2 fps = 6 frames -> 3 x 4 = 12
    assert {k: p.prompt_ids.count(i) for k, i in ids.items()} == {"image": 4, "audio": 25, "video": 12}
    raw = p.vllm_inputs["prompt_token_ids"]
    assert {k: raw.count(i) for k, i in ids.items()} == {"image": 1, "audio": 1, "video": 1}
    # expanding each placeholder by its count reproduces prompt_ids
    counts = {i: p.prompt_ids.count(i) for i in ids.values()}
    assert [t for r in raw for t in ([r] * counts.get(r, 1))] == p.prompt_ids
    mm = p.vllm_inputs["multi_modal_data"]
    assert mm["image"][0].size == (64, 64)
    frames, meta = mm["video"][0]
    assert frames.shape == (6, 64, 64, 3) and meta["fps"] == pytest.approx(2.0) and meta["total_num_frames"] == 6
    wav, sr = mm["audio"][0]
    assert sr == 16000 and wav.shape == (16000,) and wav.dtype == np.float32
    assert p.vllm_inputs["mm_processor_kwargs"] == {"videos_kwargs": {"fps": 2.0, "size": {
        "shortest_edge": 56 * 56, "longest_edge": 112 * 112}}}
    assert p.media_bytes == 64 * 64 * 3 + 16000 * 4 + 6 * 64 * 64 * 3
    assert sorted(p.mm_tensors) == ["feature_attention_mask", "image_grid_thw", "input_features", "pixel_values",
                                    "pixel_values_videos", "video_grid_thw", "video_second_per_grid"]
    assert p.mm_tensors["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert p.mm_tensors["video_grid_thw"].tolist() == [[3, 4, 4]]
    assert p.mm_tensors["video_second_per_grid"].tolist() == [1.0]  # temporal patch 2 / 2 fps


def test_vl_keeps_token_type_ids_and_sequence_inputs_pad_them(dirs, media):
    from omni_rl.models import sequence_inputs

    proc = _load(dirs["vl"])
    p = render_prompt(_sample([{"type": "image", "image": str(media / "a.png")}]), proc, enable_thinking=True,
                      video_fps=2.0, video_max_frames=8)
    types = p.mm_tensors["mm_token_type_ids"]
    assert types.shape == (1, len(p.prompt_ids)) and int(types.sum()) == 4
    inputs = sequence_inputs(p.prompt_ids, p.mm_tensors, [7, 8, 9])
    assert inputs["input_ids"][0].tolist() == p.prompt_ids + [7, 8, 9]
    assert inputs["mm_token_type_ids"][0].tolist() == types[0].tolist() + [0, 0, 0]
    assert inputs["pixel_values"] is p.mm_tensors["pixel_values"]


def test_video_with_its_soundtrack_needs_the_family_marker_key(dirs, media):
    """The data layer does not know which model reads a video's own soundtrack: without the family's mm_tensors key
    (`ModelFamily.audio_in_video_key`, passed by the caller) such a row is refused instead of rendered unmarked."""
    proc = _load(dirs["omni"])
    sample = _sample([{"type": "video", "video": str(media / "v.mp4"), "use_audio": True}])
    with pytest.raises(ValueError, match="row r: a video with its own soundtrack .* needs a model family that reads"):
        render_prompt(sample, proc, enable_thinking=True, video_fps=2.0, video_max_frames=8)
