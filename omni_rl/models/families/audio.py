"""`audio`: Qwen2-Audio (`Qwen2AudioForConditionalGeneration`, transformers >= 5 layout: model.model.audio_tower /
multi_modal_projector / language_model): text + audio in.

Checkpoint names are vLLM's (`audio_tower.*`, `multi_modal_projector.*`, `language_model.model.*`,
`language_model.lm_head.*`), which transformers also loads: transformers 5.19 would save the LM as
`language_model.model.model.*` (its module tree), which vLLM does not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omni_rl.models.families import ModelFamily
from omni_rl.models.tiny import AUDIO, MEDIA, MM_TEXT, feature_extractor, set_generation_ids, text_config
from omni_rl.models.forward import FamilyForward

TINY_SPEC: dict[str, Any] = dict(text=MM_TEXT, audio=dict(AUDIO, max_source_positions=1500), media=MEDIA,
                                 vocab_size=1024)
AUDIO_STRING = "<|audio_bos|><|AUDIO|><|audio_eos|>"


class AudioForward(FamilyForward):
    """transformers has no `get_audio_features` for Qwen2-Audio: `encode` restates the audio branch of
    `Qwen2AudioModel.forward` (processor-expanded placeholders); the per-rollout test guards it."""

    family = "audio"

    def decoder(self) -> Any:
        return self.model.model.language_model

    def encode(self, mm: dict[str, Tensor]) -> list[tuple[int, Tensor]]:
        if "input_features" not in mm:
            return []
        from transformers.masking_utils import create_bidirectional_mask

        m, feats = self.model.model, mm["input_features"]
        feat_lens, out_lens = m.audio_tower._get_feat_extract_output_lengths(mm["feature_attention_mask"].sum(-1))
        n_audio, _, n_mel = feats.shape
        n_frames = (n_mel - 2) // 2 + 1  # after the encoder's stride-2 conv
        valid = (torch.arange(n_frames, device=feats.device)[None, :] < feat_lens[:, None]).long()  # [A, F]
        attn = create_bidirectional_mask(config=m.audio_tower.config, attention_mask=valid,
                                         inputs_embeds=feats.new_zeros((n_audio, n_frames, 1)))
        hidden = m.multi_modal_projector(m.audio_tower(feats, attention_mask=attn).last_hidden_state)  # [A, F', H]
        keep = torch.arange(hidden.shape[1], device=feats.device)[None, :] < out_lens[:, None]  # [A, F']
        return [(self.model.config.audio_token_id, hidden[keep])]


def build_tiny(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    from safetensors.torch import save_file
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="audio")
    text = dict(text_config(spec, tok, rope=None), model_type="qwen2", rope_theta=10000.0)
    cfg = Qwen2AudioConfig(audio_config=dict(spec["audio"]), text_config=text,
                           audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"), tie_word_embeddings=False,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(cfg).to(torch.float32)
    set_generation_ids(model, tok)
    model.save_pretrained(out)
    state = {FAMILY.checkpoint_key(k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    # vLLM's Qwen2-Audio input schema hard-codes Whisper's 30 s window (3000 mel frames).
    proc = Qwen2AudioProcessor(feature_extractor=feature_extractor(spec["media"], chunk_s=30), tokenizer=tok,
                               chat_template=chat_template("audio"))
    proc.save_pretrained(out)


FAMILY = ModelFamily(
    name="audio",
    summary="Qwen2-Audio: text, audio",
    hf_class="Qwen2AudioForConditionalGeneration",
    forward=AudioForward,
    architectures=("Qwen2AudioForConditionalGeneration",),
    model_types=("qwen2_audio",),
    key_prefixes=(("model.audio_tower.", "audio_tower."), ("model.multi_modal_projector.", "multi_modal_projector."),
                  ("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head.")),
    modalities=frozenset({"text", "audio"}),
    mm_limits={"audio": 2},
    named_tokens={"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"},
    media_strings={"image": "", "video": "", "audio": AUDIO_STRING},
    tiny_spec=TINY_SPEC,
    build_tiny=build_tiny,
)
