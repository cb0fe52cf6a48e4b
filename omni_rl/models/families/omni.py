"""`omni`: Qwen2.5-Omni (`Qwen2_5OmniForConditionalGeneration`); the thinker (text + image + video + audio in,
text out) is what trains. The talker is never built (`enable_audio_output=False`).

Checkpoint names are the thinker's names under `thinker.` (that prefix is what routes a weight to the thinker in
vLLM's loader). A video may carry its own soundtrack (`use_audio_in_video`): frame and sound tokens interleave in
2 s chunks and the M-RoPE positions follow HF's rule for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omni_rl.models.families import ModelFamily
from omni_rl.models.families._qwen import visual_features
from omni_rl.models.forward import FamilyForward
from omni_rl.models.tiny import (AUDIO, MEDIA, MM_TEXT, MROPE, OMNI_MEDIA_STRINGS, VISION, feature_extractor,
                                 image_processor, set_generation_ids, text_config, video_processor)

TINY_SPEC: dict[str, Any] = dict(text=MM_TEXT, rope=MROPE, vision=VISION,
                                 audio=dict(AUDIO, max_source_positions=1500, n_window=100), media=MEDIA,
                                 vocab_size=1024)
# mm_tensors key marking a prompt whose videos carry their own audio, interleaved in time (bool tensor [1]); the name
# is the HF processor's / forward's kwarg. `omni_rl.data.render.render_prompt` sets it (ModelFamily.audio_in_video_key)
AUDIO_IN_VIDEO = "use_audio_in_video"
NAMED_TOKENS = {"image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "audio_token": "<|AUDIO|>",
                "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
                "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}


def audio_in_video(mm: dict[str, Tensor]) -> bool:
    flag = mm.get(AUDIO_IN_VIDEO)
    return flag is not None and bool(flag.any())


class OmniForward(FamilyForward):
    """Qwen2.5-Omni thinker (`Qwen2_5OmniThinkerForConditionalGeneration`). A prompt whose videos carry their own
    soundtrack (`mm["use_audio_in_video"]`, set by `render_prompt`) has its video and audio tokens interleaved in 2 s
    chunks; the features still fill each modality's placeholders in order, and the M-RoPE positions follow HF's
    `use_audio_in_video` rule."""

    family = "omni"
    packing = False
    packing_missing = "its M-RoPE positions are 3-D; transformers finds packed sequences from 1-D positions only"

    def encode(self, mm: dict[str, Tensor]) -> list[tuple[int, Tensor]]:
        m, cfg, out = self.model, self.model.config, []
        if "input_features" in mm:
            feats = m.get_audio_features(mm["input_features"], mm.get("feature_attention_mask"),
                                         return_dict=True).last_hidden_state
            out.append((cfg.audio_token_id, feats))
        return out + visual_features(m, cfg, mm)

    def positions(self, prompt_ids: Tensor, mm: dict[str, Tensor]) -> Tensor:
        fam = mm.get("feature_attention_mask")
        ids = prompt_ids[None]
        pos, _ = self.model.get_rope_index(ids, mm.get("image_grid_thw"), mm.get("video_grid_thw"),
                                           torch.ones_like(ids), audio_in_video(mm),
                                           fam.sum(-1) if fam is not None else None,
                                           mm.get("video_second_per_grid"))
        return pos[:, 0]  # [3, L]

    def positions_per_prompt(self, mm: dict[str, Tensor]) -> bool:
        return audio_in_video(mm)

    def hf_logits(self, input_ids: Tensor, attention_mask: Tensor, mm: dict[str, Tensor],
                  position_ids: Tensor | None = None) -> Tensor:
        """HF's forward takes one `use_audio_in_video` for the whole batch, so a batch that has such prompts comes
        with its positions computed per prompt (`score`)."""
        rest = {k: v for k, v in mm.items() if k != AUDIO_IN_VIDEO}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False, **rest).logits


def build_tiny(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    """Qwen2.5-Omni with `enable_audio_output=False`: only the thinker is instantiated (keys `thinker.*`)."""
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration, Qwen2_5OmniProcessor

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="omni")
    ids = tok.convert_tokens_to_ids
    hidden = spec["text"]["hidden_size"]
    thinker = dict(
        # vLLM reads text_config.tie_word_embeddings, transformers the thinker-level flag: both False.
        text_config=text_config(spec, tok, rope=spec["rope"]),
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
    set_generation_ids(model, tok)
    set_generation_ids(model.thinker, tok)
    model.save_pretrained(out)
    torch.save({}, out / "spk_dict.pt")  # transformers' Omni from_pretrained opens it even without the talker
    media = spec["media"]
    proc = Qwen2_5OmniProcessor(image_processor=image_processor(media), video_processor=video_processor(media),
                                feature_extractor=feature_extractor(media), tokenizer=tok,
                                chat_template=chat_template("omni"))
    proc.save_pretrained(out)


FAMILY = ModelFamily(
    name="omni",
    summary="Qwen2.5-Omni thinker: text, image, video, audio, video with its own soundtrack",
    hf_class="Qwen2_5OmniForConditionalGeneration",
    forward=OmniForward,
    architectures=("Qwen2_5OmniForConditionalGeneration", "Qwen2_5OmniModel"),
    model_types=("qwen2_5_omni",),
    submodule="thinker",
    key_prefixes=(("", "thinker."),),
    modalities=frozenset({"text", "image", "video", "audio", "omni"}),
    audio_in_video_key=AUDIO_IN_VIDEO,
    mm_limits={"image": 2, "video": 1, "audio": 2},
    named_tokens=NAMED_TOKENS,
    media_strings=OMNI_MEDIA_STRINGS,
    tiny_spec=TINY_SPEC,
    build_tiny=build_tiny,
)
