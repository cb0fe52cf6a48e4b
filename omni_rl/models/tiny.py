"""Tiny random-weight checkpoints built offline, loadable by transformers AND vLLM with identical greedy output.

Each family with a tiny model (`omni_rl.models.families.tiny_families()`; what each is: its module's docstring and
`ModelFamily.summary`) has its builder and sizes in its family module; this module holds the cache and the building
blocks they share (details and quirks in docs/models.md).

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
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omni_rl.paths import cache_root

BUILDER_VERSION = 3

# Shared by the multimodal families. LM head_dim 32 (vLLM's CPU attention kernels reject head_dim 16) -> 16 rotary
# frequencies split (t, h, w) = (4, 6, 6) for M-RoPE.
MM_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
               num_key_value_heads=1, max_position_embeddings=4096)
MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
              temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
AUDIO = dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32)
# Processor settings: pixels are (min, max) per image / frame; audio window in seconds.
MEDIA = dict(min_pixels=56 * 56, max_pixels=112 * 112, audio_chunk_s=10, sampling_rate=16000)
# What the Qwen2.5-Omni chat template writes for a media part.
OMNI_MEDIA_STRINGS = {"image": "<|vision_bos|><|IMAGE|><|vision_eos|>", "video": "<|vision_bos|><|VIDEO|><|vision_eos|>",
                      "audio": "<|audio_bos|><|AUDIO|><|audio_eos|>"}


def default_cache() -> Path:
    """`$OMNI_RL_CACHE/models` (default `~/.cache/omni_rl/models`)."""
    return cache_root() / "models"


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


def build_tiny_model(family: str, cache_dir: str | Path | None = None, *, seed: int = 0,
                     variant: str | None = None) -> Path:
    """Return the checkpoint dir of the tiny `family` model, building it (seconds) if it is not cached.

    `cache_dir` is the directory holding the model dirs (default `default_cache()`). The dir loads with
    `AutoModelForCausalLM` (text) / the family's HF class (see `omni_rl.models.policy.load_policy`),
    `AutoProcessor` / `AutoTokenizer`, and `vllm.LLM(model=dir)`. `variant` names one of the family's
    `tiny_variants` (e.g. nemotron_omni's `dense`)."""
    from omni_rl.models.families import get_family, tiny_families

    if family not in tiny_families():
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(tiny_families())}")
    fam = get_family(family)
    spec = fam.tiny_spec_of(variant)
    root = Path(cache_dir) if cache_dir is not None else default_cache()
    build = fam.build_tiny
    assert build is not None
    return cached_build(root, spec_key(family, seed, spec), lambda out: build(out, seed=seed, spec=spec))


# --------------------------------------------------------------------------------------------------- processors
def image_processor(media: dict[str, Any]) -> Any:
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(min_pixels=media["min_pixels"], max_pixels=media["max_pixels"],
                                 patch_size=14, temporal_patch_size=2, merge_size=2)


def video_processor(media: dict[str, Any]) -> Any:
    from transformers import Qwen2VLVideoProcessor

    # Frames are sampled by omni_rl.data.media (fps / max frames), not by the processor.
    return Qwen2VLVideoProcessor(min_pixels=media["min_pixels"], max_pixels=media["max_pixels"], patch_size=14,
                                 temporal_patch_size=2, merge_size=2, min_frames=2, max_frames=64,
                                 do_sample_frames=False, cap_pixels_per_frame=False)


def feature_extractor(media: dict[str, Any], *, chunk_s: int | None = None) -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128, sampling_rate=media["sampling_rate"], hop_length=160,
                                   chunk_length=chunk_s or media["audio_chunk_s"], n_fft=400,
                                   return_attention_mask=True)


def set_generation_ids(model: Any, tok: Any) -> None:
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = None


def text_config(spec: dict[str, Any], tok: Any, *, rope: dict[str, Any] | None) -> dict[str, Any]:
    cfg = dict(spec["text"], vocab_size=len(tok), tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id, bos_token_id=None)
    if rope is not None:
        cfg["rope_parameters"] = dict(rope)
    return cfg
