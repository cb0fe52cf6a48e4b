"""`vl`: Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`, transformers >= 5 layout: model.model.language_model /
model.model.visual): text + image + video in.

Checkpoint names: `model.language_model.*` -> `model.*`, `model.visual.*` -> `visual.*`. On load, the video M-RoPE
rule is replaced by vLLM's (`fix_qwen2_5_vl_rope`, the family's `after_load`: text after a video starts at the
maximum position so far + 1), so that the trainer scores exactly what vLLM generated from.

Why: transformers 5.19's Qwen2.5-VL `get_rope_index` starts the text after a video at
`start + max(h, w) / merge` (the spatial extent only), while the original Qwen2.5-VL rule -- and vLLM 0.32 --
continue at `max(position ids so far) + 1`, which includes the video's scaled temporal extent
`(t - 1) * tokens_per_second * seconds_per_grid`. Images (t = 1) agree either way; for a video longer than it is
wide the token positions after it differ and HF's logprobs drift from vLLM's (the size of the drift:
docs/benchmarks.md, "Figures behind code comments"). The replacement below keeps HF's grouping by `mm_token_type_ids` and its vision position
ids, and only changes where the next text segment starts.
"""

from __future__ import annotations

import itertools
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omni_rl.models.families import ModelFamily
from omni_rl.models.families._qwen import visual_features
from omni_rl.models.forward import FamilyForward
from omni_rl.models.tiny import (MEDIA, MM_TEXT, MROPE, VISION, image_processor, set_generation_ids, text_config,
                                 video_processor)

TINY_SPEC: dict[str, Any] = dict(text=MM_TEXT, rope=MROPE, vision=VISION, media=MEDIA, vocab_size=1024)


def _vl_rope_index(self: Any, input_ids: Any, mm_token_type_ids: Any, image_grid_thw: Any = None,
                   video_grid_thw: Any = None, second_per_grid_ts: Any = None, attention_mask: Any = None,
                   **kwargs: Any) -> tuple[Any, Any]:
    """`(position_ids [3, B, T], rope_deltas [B, 1])` with vLLM's rule: each segment starts at max(previous) + 1."""
    import torch

    merge = self.config.vision_config.spatial_merge_size
    tokens_per_second = self.config.vision_config.tokens_per_second
    grids = {1: iter(image_grid_thw if image_grid_thw is not None else []),
             2: iter(video_grid_thw if video_grid_thw is not None else [])}
    seconds = iter(second_per_grid_ts if second_per_grid_ts is not None else [])
    batch, length = input_ids.shape
    position_ids = torch.zeros(3, batch, length, dtype=input_ids.dtype, device=input_ids.device)
    deltas = []
    for b in range(batch):
        keep = (attention_mask[b].bool() if attention_mask is not None
                else torch.ones(length, dtype=torch.bool, device=input_ids.device))
        kinds = mm_token_type_ids[b][keep].tolist()
        pieces, start = [], 0
        for kind, run in itertools.groupby(kinds):
            n = len(list(run))
            if kind == 0:
                pieces.append(torch.arange(n, device=input_ids.device).view(1, -1).expand(3, -1) + start)
                start += n
                continue
            while n > 0:  # consecutive items of one modality form a single run
                grid = next(grids[kind])
                interval = tokens_per_second * next(seconds) if kind == 2 else 1
                piece = self.get_vision_position_ids(start, grid, 1, merge, interval, device=input_ids.device)
                pieces.append(piece)
                start = int(piece.max()) + 1
                n -= piece.shape[1]
        positions = torch.cat(pieces, dim=1)
        position_ids[:, b, keep] = positions.to(position_ids.dtype)
        deltas.append(int(positions.max()) + 1 - int(keep.sum()))
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def fix_qwen2_5_vl_rope(model: Any) -> Any:
    """Bind `_vl_rope_index` as `get_rope_index` of the Qwen2_5_VLModel inside `model` (in place; returns model)."""
    inner = model.model if hasattr(model, "model") else model
    inner.get_rope_index = types.MethodType(_vl_rope_index, inner)
    return model


class VLForward(FamilyForward):
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
    forward=VLForward,
    architectures=("Qwen2_5_VLForConditionalGeneration",),
    model_types=("qwen2_5_vl",),
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
