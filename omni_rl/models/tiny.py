"""Tiny random-weight checkpoints built offline, loadable by transformers AND vLLM with identical greedy output.

Families:
  text   Qwen3-style causal LM (hidden 64, 2 layers)                       -> text RL stages
  omni   Qwen2.5-Omni thinker (text + image + video + audio)               -> image / omni RL, MPO (default)

Each build is cached under `<cache>/models/<family>-<hash of the spec>`; the hash covers the spec and BUILDER_VERSION,
so changing either rebuilds. Writes go to a temp dir renamed into place, so concurrent builders never see a
half-written checkpoint. Deterministic by seed. Quirks (see docs/models.md): the Omni thinker needs
`text_config.tie_word_embeddings=False` (vLLM reads that flag, transformers the thinker-level one) and an empty
`spk_dict.pt` for transformers to load the full Omni class.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

BUILDER_VERSION = 1
FAMILIES = ("text", "omni")

TEXT_SPEC: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1, head_dim=32, max_position_embeddings=4096, vocab_size=1024)


def default_cache() -> Path:
    return Path(os.environ.get("OMNI_RL_CACHE", Path.home() / ".cache" / "omni_rl")) / "models"


def _key(family: str, seed: int, spec: dict[str, Any]) -> str:
    blob = json.dumps({"family": family, "seed": seed, "spec": spec, "v": BUILDER_VERSION}, sort_keys=True)
    return f"{family}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def build_tiny_model(family: str, cache_dir: str | Path | None = None, *, seed: int = 0) -> Path:
    """Return the checkpoint dir of the tiny `family` model, building it (seconds) if it is not cached."""
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(FAMILIES)}")
    spec = TEXT_SPEC if family == "text" else OMNI_SPEC
    root = Path(cache_dir) if cache_dir is not None else default_cache()
    final = root / _key(family, seed, spec)
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        (_build_text if family == "text" else _build_omni)(tmp, seed=seed, spec=spec)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race; its checkpoint is identical
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _build_text(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from omni_rl.models.tokenizer import train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"])
    cfg = Qwen3Config(**{**spec, "vocab_size": len(tok)}, tie_word_embeddings=False, rope_theta=10000.0,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).to(torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)


OMNI_SPEC: dict[str, Any] = dict(
    # head_dim 32 (= 64 / 2 heads): vLLM's CPU attention has no kernel for head_dim 16
    text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=1, max_position_embeddings=4096),
    vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]),
    audio=dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
               max_source_positions=1500, n_window=100),
    vocab_size=1024,
)


OMNI_TOKENS = dict(image_token="<|IMAGE|>", audio_token="<|AUDIO|>", video_token="<|VIDEO|>",
                   vision_bos_token="<|vision_bos|>", vision_eos_token="<|vision_eos|>",
                   audio_bos_token="<|audio_bos|>", audio_eos_token="<|audio_eos|>")


def _build_omni(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    import torch
    from transformers import (PreTrainedTokenizerFast, Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration,
                              Qwen2_5OmniProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor,
                              WhisperFeatureExtractor)

    from omni_rl.models.tokenizer import train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], multimodal=True)
    # the Omni processor looks its media tokens up as named tokenizer attributes
    tok = PreTrainedTokenizerFast.from_pretrained(out, extra_special_tokens=OMNI_TOKENS)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in OMNI_TOKENS.items()}
    text = dict(spec["text"], vocab_size=len(tok), tie_word_embeddings=False, 
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]})
    vision = dict(spec["vision"], out_hidden_size=spec["text"]["hidden_size"])
    audio = dict(spec["audio"], output_dim=spec["text"]["hidden_size"])
    thinker = dict(text_config=text, vision_config=vision, audio_config=audio,
                   image_token_index=ids["image_token"], video_token_index=ids["video_token"],
                   audio_token_index=ids["audio_token"], audio_start_token_id=ids["audio_bos_token"],
                   audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
                   vision_end_token_id=ids["vision_eos_token"], user_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
                   tie_word_embeddings=False)
    cfg = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(cfg).to(torch.float32)
    model.save_pretrained(out)
    torch.save({}, out / "spk_dict.pt")  # transformers' Omni loader expects the (talker) speaker dict file
    # small images: 56x56 -> 4x4 patches of 14 -> 2x2 merged tokens = 4 image tokens
    image_proc = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                       temporal_patch_size=2)
    video_proc = Qwen2VLVideoProcessor(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                       temporal_patch_size=2)
    feat = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, chunk_length=30)
    proc = Qwen2_5OmniProcessor(image_processor=image_proc, video_processor=video_proc, feature_extractor=feat,
                                tokenizer=tok, chat_template=tok.chat_template)
    proc.save_pretrained(out)
