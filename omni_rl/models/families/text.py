"""`text`: any transformers causal LM (`*ForCausalLM`); the tiny offline one is Qwen3-style (hidden 64, 2 layers).

The whole model trains; checkpoint names are the module's own names; the processor is the tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omni_rl.models.families import ModelFamily
from omni_rl.models.tiny import OMNI_MEDIA_STRINGS, set_generation_ids
from omni_rl.models.forward import FamilyForward

TINY_SPEC: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1, head_dim=32, max_position_embeddings=4096, vocab_size=1024)


def build_tiny(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from omni_rl.models.tokenizer import train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"])
    cfg = Qwen3Config(**{**spec, "vocab_size": len(tok)}, tie_word_embeddings=False, rope_theta=10000.0,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).to(torch.float32)
    set_generation_ids(model, tok)
    model.save_pretrained(out)


FAMILY = ModelFamily(
    name="text",
    summary="any transformers causal LM (*ForCausalLM); tiny: Qwen3-style",
    hf_class="AutoModelForCausalLM",
    forward=FamilyForward,
    architecture_suffix="ForCausalLM",
    model_types=("qwen3", "qwen2", "llama"),
    tokenizer_only=True,
    # text rows have no media; the template keeps the omni strings so the tiny text checkpoint stays byte-identical
    media_strings=OMNI_MEDIA_STRINGS,
    mm_special_tokens=False,
    tiny_spec=TINY_SPEC,
    build_tiny=build_tiny,
)
