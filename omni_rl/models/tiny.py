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
    text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=4096),
    vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]),
    audio=dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
               max_source_positions=1500, n_window=100),
    vocab_size=1024,
)


def _build_omni(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    raise NotImplementedError("omni family: in progress")
