"""Render a `Sample` through the model's own HF processor into a `Prompt`: identical token ids for vLLM and the trainer.

How the two sides are made to agree (verified per family in tests/models/test_vllm_parity.py):
1. The chat template (the processor's tokenizer's, with `enable_thinking`) renders the messages to text; each media
   part becomes the model's *unexpanded* placeholder (e.g. `<|vision_bos|><|IMAGE|><|vision_eos|>`).
2. The media are decoded once (`omni_rl.data.media`: PIL RGB image, uint8 [F, H, W, 3] frames sampled at
   `video_fps` / `video_max_frames`, float32 mono 16 kHz waveform).
3. The HF processor expands each placeholder to its feature-token count -> `prompt_ids` and `mm_tensors`
   (pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, video_second_per_grid, input_features,
   feature_attention_mask, mm_token_type_ids, ...: everything but input_ids / attention_mask), which is what the
   trainer feeds the model. NOTE `mm_token_type_ids` (Qwen2.5-VL: 1 image / 2 video per token) is [1, P] over the
   prompt tokens and the VL model's M-RoPE positions depend on it (without it, HF silently falls back to 1-D
   positions and no longer matches vLLM): when scoring prompt + response, pad it with zeros to the full length.
4. vLLM gets the *unexpanded* token ids + the same decoded media + the same processor kwargs
   (`{"prompt_token_ids", "multi_modal_data", "mm_processor_kwargs"}`); its own run of the same HF processor expands
   the placeholders to exactly `prompt_ids` (pre-expanded ids do NOT work: vLLM expands every placeholder token
   again). `multi_modal_data` = {"image": [PIL.Image], "video": [(uint8 [F, H, W, 3], metadata dict)],
   "audio": [(float32 waveform, sample_rate)]} (lists, in prompt order).

A video part with `"use_audio": true` brings its own soundtrack (read from the video file): its audio goes into the
processor's `audio` list at the video's place and `use_audio_in_video=True` makes the processor interleave frame and
sound tokens in 2 s chunks (Qwen-Omni); vLLM also needs `second_per_grid_ts` to chunk the same way, and the trainer
reads a marker in `mm_tensors` for its M-RoPE positions, under the key the caller passes (`audio_in_video_key`: the
model family's `ModelFamily.audio_in_video_key`).

The processor kwargs passed explicitly on both sides: `videos_kwargs={"fps": <the rate the frames were sampled at>,
"size": <the checkpoint's video processor size>}`. The size is needed because Qwen2.5-Omni's processor-level defaults (min 128*28*28 pixels per
frame) override the video processor's saved size; fps sets the temporal position ids (seconds per temporal patch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omni_rl.data.types import Prompt, Sample

# Placeholder / media-delimiter tokens: never valid in a generated answer (banned in rollouts, RECIPE vision config).
MEDIA_TOKEN_ATTRS = ("image_token", "video_token", "audio_token", "vision_bos_token", "vision_eos_token",
                     "audio_bos_token", "audio_eos_token", "boi_token", "eoi_token", "image_start_token",
                     "image_end_token", "audio_start_token", "audio_end_token")
MEDIA_TOKEN_STRINGS = ("<|vision_bos|>", "<|vision_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|AUDIO|>", "<|audio_bos|>",
                       "<|audio_eos|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
                       "<|audio_start|>", "<|audio_end|>", "<|vision_pad|>", "<image>", "<video>", "<audio>",
                       "<img>", "</img>", "<so_embedding>", "<so_start>", "<so_end>")


def tokenizer_of(processor: Any) -> Any:
    """The tokenizer inside a processor (a tokenizer is its own tokenizer)."""
    return getattr(processor, "tokenizer", processor)


def banned_token_ids(processor: Any) -> list[int]:
    """Sorted ids of the media placeholder / delimiter tokens the processor's tokenizer knows (empty for a text-only
    tokenizer). Pass them to vLLM as `SamplingParams(logit_bias={id: -100})` / `bad_words` so generations never emit
    them."""
    tok = tokenizer_of(processor)
    strings = {getattr(tok, a, None) for a in MEDIA_TOKEN_ATTRS} | {getattr(processor, a, None) for a in
                                                                     MEDIA_TOKEN_ATTRS}
    strings |= set(MEDIA_TOKEN_STRINGS)
    vocab = tok.get_vocab()
    return sorted({vocab[s] for s in strings if isinstance(s, str) and s in vocab})


def media_parts(messages: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """`(kind, path)` of every media part, in the order they appear in the conversation."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            continue
        for part in content:
            kind = part["type"]
            if kind in ("image", "video", "audio"):
                out.append((kind, str(part[kind])))
    return out


def chat_text(messages: Sequence[dict[str, Any]], processor: Any, *, enable_thinking: bool) -> str:
    """The conversation rendered by the checkpoint's chat template, ending with the assistant turn opener."""
    return tokenizer_of(processor).apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                                       enable_thinking=enable_thinking)


def render_prompt(sample: Sample, processor: Any, *, enable_thinking: bool, video_fps: float,
                  video_max_frames: int, audio_in_video_key: str | None = None) -> Prompt:
    """The `Prompt` for `sample` (see the module docstring for how vLLM's and the trainer's ids are made equal).
    `audio_in_video_key`: the `mm_tensors` key that marks a prompt whose videos carry their own soundtrack (bool
    tensor [1]) for the model family's forward; a row with such videos raises without it."""
    from omni_rl.data.media import load_audio, load_image, load_video

    text = chat_text(sample.messages, processor, enable_thinking=enable_thinking)
    tok = tokenizer_of(processor)
    raw_ids = tok(text, add_special_tokens=False)["input_ids"]
    parts = media_parts(sample.messages)
    if not parts:
        return Prompt(sample=sample, prompt_ids=list(raw_ids), vllm_inputs={"prompt_token_ids": list(raw_ids)})

    images = [load_image(p) for k, p in parts if k == "image"]
    clips = [load_video(p, fps=video_fps, max_frames=video_max_frames) for k, p in parts if k == "video"]
    videos = [c.frames for c in clips]
    sr = int(getattr(getattr(processor, "feature_extractor", None), "sampling_rate", 16000))
    in_video = audio_in_video(sample.messages)
    if in_video and audio_in_video_key is None:
        raise ValueError(f"row {sample.id}: a video with its own soundtrack (use_audio) needs a model family that "
                         "reads one (ModelFamily.audio_in_video_key)")
    # With the videos' own soundtracks, the k-th audio is the k-th video's track (read from the video file itself).
    audios = [load_audio(p, sample_rate=sr) for k, p in parts if k == ("video" if in_video else "audio")]
    # One fps per processor call: the sampling rate of the first clip (all clips of a row share it unless
    # `video_max_frames` thinned a longer one).
    mm_kwargs = processor_kwargs(processor, has_video=bool(videos), video_fps=clips[0].fps if clips else video_fps,
                                 use_audio_in_video=in_video)
    call: dict[str, Any] = {}
    if images:
        call["images"] = images
    if videos:
        from transformers.video_utils import VideoMetadata

        metas = [video_metadata(c.frames.shape[0], c.fps) for c in clips]
        call["videos"] = videos
        call["video_metadata"] = [VideoMetadata(**{k: v for k, v in m.items() if k != "do_sample_frames"})
                                  for m in metas]
    if audios:
        call["audio"] = audios
        call["sampling_rate"] = sr
    out = processor(text=[text], return_tensors="pt", **call, **mm_kwargs)
    prompt_ids = out["input_ids"][0].tolist()
    mm_tensors = {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask")}
    mm_data: dict[str, Any] = {}
    if images:
        mm_data["image"] = images
    if videos:
        mm_data["video"] = [(v, m) for v, m in zip(videos, metas)]
    if audios:
        mm_data["audio"] = [(a, sr) for a in audios]
    vllm_inputs: dict[str, Any] = {"prompt_token_ids": list(raw_ids), "multi_modal_data": mm_data}
    if mm_kwargs:
        vllm_inputs["mm_processor_kwargs"] = mm_kwargs
    if in_video:
        import torch

        # the trainer's M-RoPE positions need it too (HF: `use_audio_in_video` of get_rope_index / forward)
        mm_tensors[audio_in_video_key] = torch.ones(1, dtype=torch.bool)
        # vLLM 0.32 interleaves a video's frames and soundtrack by a seconds-per-temporal-patch that it reads from
        # here and otherwise takes as 1.0; the HF processor derives it from the fps (`video_second_per_grid`).
        vllm_inputs["mm_processor_kwargs"] = {**mm_kwargs, "second_per_grid_ts": [
            float(x) for x in out["video_second_per_grid"]]}
    media_bytes = sum(_nbytes(x) for x in [*images, *videos, *audios])
    return Prompt(sample=sample, prompt_ids=prompt_ids, vllm_inputs=vllm_inputs, mm_tensors=mm_tensors,
                  media_bytes=media_bytes)


def video_metadata(num_frames: int, fps: float) -> dict[str, Any]:
    """What the frames are: all `num_frames` kept, sampled at `fps`, no further sampling. vLLM takes it with each
    video (`(frames, metadata)`; Qwen2.5-VL requires it) and hands it to the HF processor as `video_metadata`, which
    derives the temporal position scale from it (`sampled_fps`); we pass the same to our processor call."""
    return {"fps": float(fps), "duration": num_frames / float(fps), "total_num_frames": int(num_frames),
            "frames_indices": list(range(num_frames)), "video_backend": "pyav", "do_sample_frames": False}


def audio_in_video(messages: Sequence[dict[str, Any]]) -> bool:
    """True when the row's videos bring their own soundtrack (`"use_audio": true` on a video part; the loader checks
    that then every video has it and no separate audio part exists)."""
    return any(part.get("type") == "video" and part.get("use_audio") is True
               for message in messages if not isinstance(message["content"], str) for part in message["content"])


def processor_kwargs(processor: Any, *, has_video: bool, video_fps: float,
                     use_audio_in_video: bool = False) -> dict[str, Any]:
    """Extra HF-processor kwargs used identically by our call and vLLM's (`mm_processor_kwargs`)."""
    if not has_video:
        return {}
    videos_kwargs: dict[str, Any] = {"fps": float(video_fps)}
    vp = getattr(processor, "video_processor", None)
    size = getattr(vp, "size", None)
    if size is not None:
        videos_kwargs["size"] = {k: v for k, v in dict(size).items() if v is not None}
    out: dict[str, Any] = {"videos_kwargs": videos_kwargs}
    if use_audio_in_video:
        # top level: vLLM's Qwen-Omni processor reads it there, HF routes it into the video kwargs
        out["use_audio_in_video"] = True
    return out


def _nbytes(item: Any) -> int:
    """Bytes held by one decoded media item (PIL image, frame array, waveform)."""
    if hasattr(item, "nbytes"):
        return int(item.nbytes)
    width, height = item.size  # PIL image
    return int(width * height * len(item.getbands()))
