"""`vl`: Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`, transformers >= 5 layout: model.model.language_model /
model.model.visual): text + image + video in.

Checkpoint names: `model.language_model.*` -> `model.*`, `model.visual.*` -> `visual.*`. On load, the video M-RoPE
rule is replaced by vLLM's (`omni_rl.models.adapters.fix_qwen2_5_vl_rope`: text after a video starts at the
maximum position so far + 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omni_rl.models.adapters import fix_qwen2_5_vl_rope
from omni_rl.models.families import ModelFamily
from omni_rl.models.tiny import (MEDIA, MM_TEXT, MROPE, VISION, image_processor, set_generation_ids, text_config,
                                 video_processor)
from omni_rl.training.forward import ModelAdapter, visual_features

TINY_SPEC: dict[str, Any] = dict(text=MM_TEXT, rope=MROPE, vision=VISION, media=MEDIA, vocab_size=1024)


class VLAdapter(ModelAdapter):
    """Qwen2.5-VL: the LM decoder is `model.model.language_model`; images and videos go through its vision tower."""

    family = "vl"
    packing = False
    packing_missing = "its M-RoPE positions are 3-D; transformers finds packed sequences from 1-D positions only"

    def decoder(self) -> Any:
        return self.model.model.language_model

    def encode(self, mm: dict[str, Tensor]) -> list[tuple[int, Tensor]]:
        return visual_features(self.model.model, self.model.config, mm)

    def positions(self, prompt_ids: Tensor, mm: dict[str, Tensor]) -> Tensor | None:
        if "image_grid_thw" not in mm and "video_grid_thw" not in mm:
            return None
        ids = prompt_ids[None]
        pos, _ = self.model.model.get_rope_index(ids, mm["mm_token_type_ids"], image_grid_thw=mm.get("image_grid_thw"),
                                                 video_grid_thw=mm.get("video_grid_thw"),
                                                 second_per_grid_ts=mm.get("second_per_grid_ts"),
                                                 attention_mask=torch.ones_like(ids))
        return pos[:, 0]  # [3, L]


def build_tiny(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="vl")
    ids = tok.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        text_config=text_config(spec, tok, rope=spec["rope"]),
        vision_config=dict(spec["vision"], out_hidden_size=spec["text"]["hidden_size"]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).to(torch.float32)
    set_generation_ids(model, tok)
    model.save_pretrained(out)
    media = spec["media"]
    proc = Qwen2_5_VLProcessor(image_processor=image_processor(media), video_processor=video_processor(media),
                               tokenizer=tok, chat_template=chat_template("vl"))
    proc.save_pretrained(out)


FAMILY = ModelFamily(
    name="vl",
    summary="Qwen2.5-VL: text, image, video",
    hf_class="Qwen2_5_VLForConditionalGeneration",
    adapter=VLAdapter,
    architectures=("Qwen2_5_VLForConditionalGeneration",),
    key_prefixes=(("model.language_model.", "model."), ("model.visual.", "visual."), ("lm_head.", "lm_head.")),
    modalities=frozenset({"text", "image", "video"}),
    mm_limits={"image": 2, "video": 1},
    named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                  "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
    media_strings={"image": "<|vision_start|><|image_pad|><|vision_end|>",
                   "video": "<|vision_start|><|video_pad|><|vision_end|>", "audio": ""},
    after_load=fix_qwen2_5_vl_rope,
    tiny_spec=TINY_SPEC,
    build_tiny=build_tiny,
)
