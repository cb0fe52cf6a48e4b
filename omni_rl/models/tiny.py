"""Tiny random-weight checkpoints built offline, loadable by transformers AND vLLM with identical greedy output.

Families (details and quirks in docs/models.md):
  text   Qwen3-style causal LM (hidden 64, 2 layers)                          -> text RL stages
  omni   Qwen2.5-Omni thinker (text + image + video + audio, no talker)       -> image / omni RL, MPO (default)
  vl     Qwen2.5-VL (text + image + video)
  audio  Qwen2-Audio (text + audio)

Each build is cached under `<cache_dir>/<family>-<hash>`; the hash covers the family, seed, spec and
BUILDER_VERSION, so changing any of them rebuilds. Writes go to a temp dir renamed into place, so concurrent builders
never see a half-written checkpoint (the loser of a race deletes its own copy; both copies are identical anyway).
Deterministic by seed: the tokenizer is trained on a fixed corpus and the weights come from `torch.manual_seed(seed)`.

Media token budgets (processor settings saved in the checkpoint dir): images and video frames are resized to
multiples of 28 px between 56x56 and 112x112 (a 64x64 image -> 2x2 = 4 tokens); video: 2 frames per temporal
patch, so 8 frames of 64x64 -> 16 tokens; audio: 25 tokens per second (Whisper log-mel features padded to a 10 s
window for omni; 30 s for Qwen2-Audio, whose vLLM input schema requires 3000 frames).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUILDER_VERSION = 3
FAMILIES = ("text", "omni", "vl", "audio")

TEXT_SPEC: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1, head_dim=32, max_position_embeddings=4096, vocab_size=1024)

# Shared by the multimodal families. LM head_dim 32 (vLLM's CPU attention kernels reject head_dim 16) -> 16 rotary
# frequencies split (t, h, w) = (4, 6, 6) for M-RoPE.
_MM_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=4096)
_MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
               temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
_AUDIO = dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32)
# Processor settings: pixels are (min, max) per image / frame; audio window in seconds.
_MEDIA = dict(min_pixels=56 * 56, max_pixels=112 * 112, audio_chunk_s=10, sampling_rate=16000)

OMNI_SPEC: dict[str, Any] = dict(text=_MM_TEXT, rope=_MROPE, vision=_VISION,
                                 audio=dict(_AUDIO, max_source_positions=1500, n_window=100), media=_MEDIA,
                                 vocab_size=1024)
VL_SPEC: dict[str, Any] = dict(text=_MM_TEXT, rope=_MROPE, vision=_VISION, media=_MEDIA, vocab_size=1024)
AUDIO_SPEC: dict[str, Any] = dict(text=_MM_TEXT, audio=dict(_AUDIO, max_source_positions=1500), media=_MEDIA,
                                  vocab_size=1024)
SPECS: dict[str, dict[str, Any]] = {"text": TEXT_SPEC, "omni": OMNI_SPEC, "vl": VL_SPEC, "audio": AUDIO_SPEC}


def default_cache() -> Path:
    """`$OMNI_RL_CACHE/models` (default `~/.cache/omni_rl/models`)."""
    return Path(os.environ.get("OMNI_RL_CACHE", Path.home() / ".cache" / "omni_rl")) / "models"


def spec_key(family: str, seed: int, spec: dict[str, Any]) -> str:
    """Cache directory name: family + 12 hex digits of sha256(family, seed, spec, BUILDER_VERSION)."""
    blob = json.dumps({"family": family, "seed": seed, "spec": spec, "v": BUILDER_VERSION}, sort_keys=True)
    return f"{family}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cached_build(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """Return `root/name`, first running `build(tmp_dir)` and renaming tmp_dir into place if it does not exist.
    `config.json` marks a complete checkpoint. Safe under concurrent builders (atomic rename)."""
    final = root / name
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    tmp.chmod(0o755)
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race; its checkpoint is identical
            if not (final / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_tiny_model(family: str, cache_dir: str | Path | None = None, *, seed: int = 0) -> Path:
    """Return the checkpoint dir of the tiny `family` model, building it (seconds) if it is not cached.

    `cache_dir` is the directory holding the model dirs (default `default_cache()`). The dir loads with
    `AutoModelForCausalLM` (text) / the family's HF class (see `omni_rl.models.policy.load_policy`),
    `AutoProcessor` / `AutoTokenizer`, and `vllm.LLM(model=dir)`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(FAMILIES)}")
    spec = SPECS[family]
    root = Path(cache_dir) if cache_dir is not None else default_cache()
    builder = _BUILDERS[family]
    return cached_build(root, spec_key(family, seed, spec), lambda out: builder(out, seed=seed, spec=spec))


# --------------------------------------------------------------------------------------------------------- text
def _build_text(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from omni_rl.models.tokenizer import train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"])
    cfg = Qwen3Config(**{**spec, "vocab_size": len(tok)}, tie_word_embeddings=False, rope_theta=10000.0,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).to(torch.float32)
    _set_generation_ids(model, tok)
    model.save_pretrained(out)


# --------------------------------------------------------------------------------------------------- processors
def _image_processor(media: dict[str, Any]) -> Any:
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(min_pixels=media["min_pixels"], max_pixels=media["max_pixels"],
                                 patch_size=14, temporal_patch_size=2, merge_size=2)


def _video_processor(media: dict[str, Any]) -> Any:
    from transformers import Qwen2VLVideoProcessor

    # Frames are sampled by omni_rl.data.media (fps / max frames), not by the processor.
    return Qwen2VLVideoProcessor(min_pixels=media["min_pixels"], max_pixels=media["max_pixels"], patch_size=14,
                                 temporal_patch_size=2, merge_size=2, min_frames=2, max_frames=64,
                                 do_sample_frames=False, cap_pixels_per_frame=False)


def _feature_extractor(media: dict[str, Any], *, chunk_s: int | None = None) -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128, sampling_rate=media["sampling_rate"], hop_length=160,
                                   chunk_length=chunk_s or media["audio_chunk_s"], n_fft=400,
                                   return_attention_mask=True)


def _set_generation_ids(model: Any, tok: Any) -> None:
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = None


def _text_config(spec: dict[str, Any], tok: Any, *, rope: dict[str, Any] | None) -> dict[str, Any]:
    cfg = dict(spec["text"], vocab_size=len(tok), tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id, bos_token_id=None)
    if rope is not None:
        cfg["rope_parameters"] = dict(rope)
    return cfg


# --------------------------------------------------------------------------------------------------------- omni
def _build_omni(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    """Qwen2.5-Omni with `enable_audio_output=False`: only the thinker is instantiated (keys `thinker.*`)."""
    import torch
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration, Qwen2_5OmniProcessor

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="omni")
    ids = tok.convert_tokens_to_ids
    hidden = spec["text"]["hidden_size"]
    thinker = dict(
        # vLLM reads text_config.tie_word_embeddings, transformers the thinker-level flag: both False.
        text_config=_text_config(spec, tok, rope=spec["rope"]),
        vision_config=dict(spec["vision"], out_hidden_size=hidden),
        audio_config=dict(spec["audio"], output_dim=hidden),
        audio_token_index=ids("<|AUDIO|>"), image_token_index=ids("<|IMAGE|>"), video_token_index=ids("<|VIDEO|>"),
        audio_start_token_id=ids("<|audio_bos|>"), audio_end_token_id=ids("<|audio_eos|>"),
        vision_start_token_id=ids("<|vision_bos|>"), vision_end_token_id=ids("<|vision_eos|>"),
        user_token_id=ids("<|im_start|>"), tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
    )
    # The talker is never built (enable_audio_output=False); its default token ids (~151k) only make transformers
    # warn on every load that they exceed the talker vocabulary, so they are set to 0.
    talker = {k: 0 for k in ("tts_text_start_token_id", "tts_text_end_token_id", "tts_text_pad_token_id",
                             "vision_start_token_id", "vision_end_token_id", "audio_start_token_id",
                             "audio_end_token_id")}
    cfg = Qwen2_5OmniConfig(thinker_config=thinker, talker_config=talker, enable_audio_output=False)
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(cfg).to(torch.float32)
    _set_generation_ids(model, tok)
    _set_generation_ids(model.thinker, tok)
    model.save_pretrained(out)
    torch.save({}, out / "spk_dict.pt")  # transformers' Omni from_pretrained opens it even without the talker
    media = spec["media"]
    proc = Qwen2_5OmniProcessor(image_processor=_image_processor(media), video_processor=_video_processor(media),
                                feature_extractor=_feature_extractor(media), tokenizer=tok,
                                chat_template=chat_template("omni"))
    proc.save_pretrained(out)


# ----------------------------------------------------------------------------------------------------------- vl
def _build_vl(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="vl")
    ids = tok.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        text_config=_text_config(spec, tok, rope=spec["rope"]),
        vision_config=dict(spec["vision"], out_hidden_size=spec["text"]["hidden_size"]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).to(torch.float32)
    _set_generation_ids(model, tok)
    model.save_pretrained(out)
    media = spec["media"]
    proc = Qwen2_5_VLProcessor(image_processor=_image_processor(media), video_processor=_video_processor(media),
                               tokenizer=tok, chat_template=chat_template("vl"))
    proc.save_pretrained(out)


# -------------------------------------------------------------------------------------------------------- audio
def _build_audio(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    """Qwen2-Audio. Quirk: transformers 5.19 saves the LM as `language_model.model.model.*` (its module tree) but
    vLLM expects `language_model.model.*`; the checkpoint is written with vLLM's names, which transformers also loads
    (see `omni_rl.models.policy.checkpoint_key`)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="audio")
    text = dict(_text_config(spec, tok, rope=None), model_type="qwen2", rope_theta=10000.0)
    cfg = Qwen2AudioConfig(audio_config=dict(spec["audio"]), text_config=text,
                           audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"), tie_word_embeddings=False,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(cfg).to(torch.float32)
    _set_generation_ids(model, tok)
    model.save_pretrained(out)
    from omni_rl.models.policy import checkpoint_key

    state = {checkpoint_key(k, "audio"): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    # vLLM's Qwen2-Audio input schema hard-codes Whisper's 30 s window (3000 mel frames).
    proc = Qwen2AudioProcessor(feature_extractor=_feature_extractor(spec["media"], chunk_s=30), tokenizer=tok,
                               chat_template=chat_template("audio"))
    proc.save_pretrained(out)


_BUILDERS: dict[str, Callable[..., None]] = {"text": _build_text, "omni": _build_omni, "vl": _build_vl,
                                             "audio": _build_audio}
