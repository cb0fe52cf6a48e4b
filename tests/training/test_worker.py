"""TrainerWorker in-process: on-policy hand value, freezing policy, warmup, logprob mask, KL, weights/checkpoints."""

import pytest
import torch
from safetensors import safe_open
from training_helpers import OMNI, TEXT, mm_prompt, random_sequences, text_batch

from omni_rl.models.families import get_family, resolve_family
from omni_rl.models.parts import param_groups
from omni_rl.models.policy import load_model, load_processor
from omni_rl.training.batch import TrainBatch
from omni_rl.training.objectives.gspo import GSPOObjective
from omni_rl.training.fsdp import weight_block
from omni_rl.training.worker import TrainerWorker, reduce_metrics

TEXT_RL_FREEZE = dict(vision_encoder=True, audio_encoder=True, projector=True, lm_body=False, lm_embeddings=True,
                      lm_head=False, router=True)


def _params(w):
    return {n: p.detach().clone() for n, p in w.model.named_parameters()}


def test_on_policy_loss_hand_value(text_model_path):
    # old_logp None -> ratio s_i = 1 for every sequence -> L_i = -min(A_i, A_i) = -A_i;
    # step loss = sum_i(w_i * -A_i) / global_num_seqs. Weights [1]*9 with seq 2 at 0 -> count 8.
    w = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=4)
    batch = text_batch(seed=0)
    batch.sequences[2].weight = 0.0
    m = reduce_metrics([w.train_step(batch, global_num_seqs=batch.num_weighted)])
    expected = -sum(s.advantage * s.weight for s in batch.sequences) / 8
    assert abs(m["train/loss"] - expected) < 1e-9
    assert m["train/ratio_mean"] == pytest.approx(1.0, abs=1e-12) and m["train/clip_frac"] == 0.0
    assert m["train/num_seqs"] == 9 and m["train/num_weighted_seqs"] == 8
    assert m["train/tokens"] == batch.num_tokens() and m["train/optimizer_step"] == 1.0


def test_text_rl_freezing_policy_on_omni(omni_model_path):
    w = TrainerWorker(omni_model_path, family=OMNI, warmup_steps=0, freeze=TEXT_RL_FREEZE, lr=1e-2, micro_batch_size=8)
    groups = param_groups(w.model, OMNI)
    assert w.info()["frozen_tensors"] == {g: len(groups[g]) for g, on in TEXT_RL_FREEZE.items() if on}
    proc = load_processor(omni_model_path, OMNI)
    batch = TrainBatch(prompts=[mm_prompt(proc, "image+audio", 0)], sequences=random_sequences(1, 4, seed=0))
    before = _params(w)
    w.train_step(batch, global_num_seqs=4)
    after = _params(w)
    trainable = set(groups["lm_body"]) | set(groups["lm_head"])
    for name in before:
        changed = not torch.equal(before[name], after[name])
        assert changed == (name in trainable), name
    assert len(w.optimizer.param_groups[0]["params"]) == len(trainable)
    with pytest.raises(ValueError, match="unknown parameter groups"):
        TrainerWorker(omni_model_path, family=OMNI, warmup_steps=0, freeze={"vision": True})


def test_linear_warmup(text_model_path):
    w = TrainerWorker(text_model_path, family=TEXT, lr=0.3, warmup_steps=3, micro_batch_size=9)
    batch = text_batch(seed=1)
    lrs = [w.train_step(batch, global_num_seqs=9)["lr"] for _ in range(4)]
    assert lrs == pytest.approx([0.1, 0.2, 0.3, 0.3], abs=1e-12)  # (s + 1) / 3 * lr, then lr


def test_lr_factor_by_hand():
    import math

    from omni_rl.training.worker import lr_factor

    const = lr_factor(2)
    assert [const(s) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    cos = lr_factor(2, "cosine", total_steps=6, min_ratio=0.1)  # warmup 0, 1; cosine over steps 2..6
    want = [0.5, 1.0] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)] + [0.1]
    assert [cos(s) for s in range(8)] == pytest.approx(want, abs=1e-12)
    assert cos(4) == pytest.approx(0.55, abs=1e-12)  # half way: (1 + 0.1) / 2
    with pytest.raises(ValueError, match="cosine"):
        lr_factor(2, "cosine", total_steps=2)
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        lr_factor(0, "linear")


def test_cosine_schedule_reaches_the_worker(text_model_path):
    w = TrainerWorker(text_model_path, family=TEXT, lr=0.2, warmup_steps=0, lr_schedule="cosine", total_steps=2,
                      min_lr_ratio=0.0, micro_batch_size=9)
    batch = text_batch(seed=1)
    lrs = [w.train_step(batch, global_num_seqs=9)["lr"] for _ in range(3)]
    assert lrs == pytest.approx([0.2, 0.1, 0.0], abs=1e-12)


def test_logprob_error_mask_equals_zero_weight(text_model_path):
    batch = text_batch(seed=2)
    ref = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=9)
    logp = ref.compute_logp(batch)
    for i, s in enumerate(batch.sequences):
        s.rollout_logp = [v + (0.9 if i == 4 else -0.01) for v in logp[i]]  # seq 4: error 0.9 > 0.5
    masked = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=4, max_logprob_error=0.5)
    m = reduce_metrics([masked.train_step(batch, global_num_seqs=9)])
    assert m["train/logprob_masked_seqs"] == 1.0
    assert m["train/logprob_abs_diff_mean"] == pytest.approx((0.9 * len(logp[4]) + 0.01 * (
        batch.num_tokens() - len(logp[4]))) / batch.num_tokens(), abs=1e-9)
    assert m["train/logprob_seq_error_max"] == pytest.approx(0.9, abs=1e-9)
    for s in batch.sequences:
        s.rollout_logp = None
    batch.sequences[4].weight = 0.0
    zero = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=4)
    m0 = reduce_metrics([zero.train_step(batch, global_num_seqs=9)])
    assert m0["train/loss"] == pytest.approx(m["train/loss"], abs=1e-12)
    for (n, a), b in zip(masked.model.named_parameters(), zero.model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=0, msg=n)


def test_kl_to_reference(text_model_path):
    batch = text_batch(seed=3)
    w = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0,
                      dtype="float64", micro_batch_size=9, objective=GSPOObjective(kl_beta=0.5),
                      lr=1e-2)
    first = reduce_metrics([w.train_step(batch, global_num_seqs=9)])
    assert first["train/kl_ref"] == pytest.approx(0.0, abs=1e-12)  # policy == reference before any update
    second = reduce_metrics([w.train_step(batch, global_num_seqs=9)])
    assert second["train/kl_ref"] > 0


def test_state_dict_chunks_use_checkpoint_names(omni_model_path):
    w = TrainerWorker(omni_model_path, family=OMNI, warmup_steps=0, freeze=TEXT_RL_FREEZE)
    chunks = w.state_dict_chunks(max_bytes=64 << 10)
    names = [n for c in chunks for n, _ in c]
    with safe_open(f"{omni_model_path}/model.safetensors", "pt") as f:
        assert set(names) == set(f.keys())  # "thinker.*": what vLLM and the checkpoint use
    assert len(chunks) > 1
    plan = w.weight_plan(max_bytes=64 << 10)
    assert [[ckpt for _, ckpt, _, _ in c] for c in plan] == [[n for n, _ in c] for c in chunks]
    assert [k for c in plan for k, _, _, _ in c] == list(w.model.state_dict())  # every weight once, in order
    blocks = [{weight_block(k) for k, _, _, _ in c} for c in plan]
    for c, tensors in zip(blocks, chunks):  # over the budget only when one block alone is bigger
        assert len(c) == 1 or sum(t.numel() * t.element_size() for _, t in tensors) <= 64 << 10
    for a, b in zip(blocks, blocks[1:]):
        assert not a & b  # a block (a decoder layer: vLLM fuses its q/k/v) is never split
    assert {"model.layers.0", "audio_tower.layers.0"} <= {b for c in blocks for b in c}
    trainable = [n for c in w.state_dict_chunks(trainable_only=True) for n, _ in c]
    assert trainable and set(trainable) < set(names)
    assert all(not n.startswith(("thinker.visual.", "thinker.audio_tower.")) for n in trainable)


def test_save_load_resume_is_exact(text_model_path, tmp_path):
    batch = text_batch(seed=4)
    kw = dict(dtype="float64", micro_batch_size=4, lr=1e-2, warmup_steps=2)
    a = TrainerWorker(text_model_path, family=TEXT, **kw)
    a.train_step(batch, global_num_seqs=9)
    a.save(tmp_path / "ckpt")
    saved = _params(a)
    b = TrainerWorker(text_model_path, family=TEXT, **kw)
    b.load(tmp_path / "ckpt")
    assert b.step == 1
    ma, mb = a.train_step(batch, global_num_seqs=9), b.train_step(batch, global_num_seqs=9)
    assert ma["lr"] == mb["lr"] == 1e-2 and ma["loss"] == mb["loss"]  # scheduler state restored (step 2 of warmup)
    for (n, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.equal(p, q), n  # optimizer moments restored too
    exported = load_model(tmp_path / "ckpt", "float64", family=TEXT)  # the checkpoint is also a plain HF dir
    for n, p in exported.named_parameters():
        assert torch.equal(p, saved[n]), n


def test_train_checks_count_and_weights_are_complete(text_model_path):
    w = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=4,
                      freeze={"lm_embeddings": True})
    batch = text_batch(seed=7)
    with pytest.raises(ValueError, match="global_num_seqs"):
        w.train(batch, global_num_seqs=5)
    m = w.train(batch, global_num_seqs=9, num_minibatches=3)
    assert m["train/optimizer_steps"] == 3 and m["train/num_seqs"] == 9 and w.step == 3
    names = {n for n, _ in w.weights()}
    assert "model.embed_tokens.weight" in names and names == {w.checkpoint_name(n) for n in w.model.state_dict()}
    assert set(w.grad_snapshot()) == {n for n, p in w.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", ["text", "omni"])
def test_activation_checkpointing_gives_the_same_step(family, text_model_path, omni_model_path):
    """Recomputing each decoder layer in the backward changes memory, not numbers: loss, every gradient and the
    updated weights equal the plain step (float64). The omni batch has image and audio prompts."""
    if family == "text":
        path, batch = text_model_path, text_batch(seed=4)
    else:
        path = omni_model_path
        proc = load_processor(path, OMNI)
        batch = TrainBatch(prompts=[mm_prompt(proc, "image", 0), mm_prompt(proc, "image+audio", 1)],
                           sequences=random_sequences(2, 3, seed=2))
    fam = TEXT if family == "text" else OMNI
    plain = TrainerWorker(path, family=fam, warmup_steps=0, dtype="float64", micro_batch_size=4)
    ckpt = TrainerWorker(path, family=fam, warmup_steps=0, dtype="float64", micro_batch_size=4, activation_checkpointing=True)
    layers = ckpt.fwd.decoder().layers
    assert all(type(layer).__name__ == type(plain.fwd.decoder().layers[0]).__name__ for layer in layers)
    calls = {"plain": 0, "ckpt": 0}
    for key, worker in (("plain", plain), ("ckpt", ckpt)):  # runs of the first layer's MLP (hooks are off in the
        inner = worker.fwd.decoder().layers[0].mlp      # recompute, so count the forward itself)

        def counted(*args, _forward=inner.forward, _key=key, **kwargs):
            calls[_key] += 1
            return _forward(*args, **kwargs)

        inner.forward = counted
    m_plain = reduce_metrics([plain.train_step(batch, global_num_seqs=batch.num_weighted)])
    m_ckpt = reduce_metrics([ckpt.train_step(batch, global_num_seqs=batch.num_weighted)])
    n_micro = len(batch.chunks(4))
    assert calls == {"plain": n_micro, "ckpt": 2 * n_micro}  # recomputed once in the backward
    assert m_ckpt["train/loss"] == pytest.approx(m_plain["train/loss"], abs=1e-12)
    assert m_ckpt["train/grad_norm"] > 0
    grads_plain, grads_ckpt = plain.grad_snapshot(), ckpt.grad_snapshot()
    assert sorted(grads_plain) == sorted(grads_ckpt)  # the same parameter names: layers are not wrapped
    for n, g in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[n], g, atol=1e-12, rtol=0, msg=n)
    for (n, a), b in zip(ckpt.model.named_parameters(), plain.model.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), atol=1e-12, rtol=0, msg=n)


def _mixed_precision_rank(rank: int, port: int, model_path: str, batch: TrainBatch, out: str) -> None:
    from pathlib import Path

    worker = TrainerWorker(model_path, family=resolve_family(model_path), warmup_steps=0,
                           dtype="bfloat16", micro_batch_size=4, strategy="fsdp2", rank=rank,
                           world_size=1, master_addr="127.0.0.1", master_port=port, mixed_precision="bfloat16")
    logp = worker.compute_logp(batch)
    metrics = worker.train_step(batch, global_num_seqs=batch.num_weighted)
    torch.save({"logp": logp, "metrics": metrics,
                "param_dtypes": {p.dtype for p in worker.model.parameters()},
                "grad_dtypes": {p.grad.dtype for p in worker.params},
                "adam_dtypes": {v.dtype for s in worker.optimizer.state.values() for v in s.values()
                                if torch.is_tensor(v) and v.dim() > 0}}, Path(out) / f"{rank}.pt")
    worker.shutdown()


def test_fsdp2_bf16_mixed_precision_keeps_fp32_master_weights(text_model_path, tmp_path):
    """One FSDP2 rank with `mixed_precision="bfloat16"`: the forward runs in bf16 (the loss differs from fp32's by
    bf16 rounding, not by 0), while parameters, gradients and AdamW state stay float32. The rank runs in a spawned
    process, as under Ray: its process group must not meet one left in this process."""
    from training_helpers import run_two_ranks

    batch = text_batch(seed=5)
    fp32 = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float32", micro_batch_size=4)
    logp32 = fp32.compute_logp(batch)
    m32 = reduce_metrics([fp32.train_step(batch, global_num_seqs=batch.num_weighted)])
    [mixed] = run_two_ranks(_mixed_precision_rank, text_model_path, batch, out_dir=tmp_path, world_size=1)
    diffs = [abs(a - b) for r32, r16 in zip(logp32, mixed["logp"]) for a, b in zip(r32, r16)]
    assert 0 < max(diffs) < 0.1  # bf16 compute: close, not equal
    assert reduce_metrics([mixed["metrics"]])["train/loss"] == pytest.approx(m32["train/loss"], abs=0.05)
    assert mixed["param_dtypes"] == mixed["grad_dtypes"] == mixed["adam_dtypes"] == {torch.float32}
    with pytest.raises(ValueError, match="needs strategy='fsdp2'"):
        TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, mixed_precision="bfloat16")


def test_a_second_process_group_is_refused_with_what_to_do():
    """A trainer rank cannot join a group in a process that already has one (an in-process vLLM engine makes one):
    the error says so instead of torch's bare "initialize the default process group twice"."""
    import torch.distributed as dist

    from omni_rl.training.dist import free_port, init_process_group

    ours = not dist.is_initialized()  # an in-process vLLM test earlier on this pytest worker may have left one
    if ours:
        init_process_group(rank=0, world_size=1, master_addr="127.0.0.1", master_port=free_port(), backend="gloo")
    try:
        with pytest.raises(RuntimeError, match="already has a torch.distributed default group .* own process"):
            init_process_group(rank=0, world_size=1, master_addr="127.0.0.1", master_port=free_port(), backend="gloo")
    finally:
        if ours:
            dist.destroy_process_group()


def _sharded_load_rank(rank: int, port: int, model_path: str, world_size: int, out: str) -> None:
    from pathlib import Path

    try:
        worker = TrainerWorker(model_path, family=resolve_family(model_path), warmup_steps=0, strategy="fsdp2", rank=rank,
                               world_size=world_size, master_addr="127.0.0.1", master_port=port, num_threads=1)
    except KeyError as e:  # a checkpoint that lacks a weight
        torch.save({"error": str(e)}, Path(out) / f"{rank}.pt")
        return
    local = sum(p.to_local().numel() for p in worker.model.parameters())
    full = sum(p.numel() for p in worker.model.parameters())
    params = worker.params_snapshot()  # gathered: every rank takes part
    buffers = {n: b.detach().clone() for n, b in worker.model.named_buffers()}
    torch.save({"share": local / full, "params": params if rank == 0 else None, "buffers": buffers},
               Path(out) / f"{rank}.pt")
    worker.shutdown()


@pytest.mark.parametrize("family", ["text", "vl", "omni", "audio", "nemotron_omni"])
def test_fsdp2_ranks_read_only_their_shards_and_hold_the_checkpoint(family, tmp_path):
    """FSDP2 ranks build the model on the meta device, shard it, and read only their part of each tensor from the
    checkpoint (one block at a time): gathered back, every parameter equals a plain full load bit for bit, every
    buffer (rotary frequencies, ...) too, and each rank holds about half of the parameters."""
    from training_helpers import run_two_ranks

    from omni_rl.models.tiny import build_tiny_model

    path = str(build_tiny_model(family))
    ranks = run_two_ranks(_sharded_load_rank, path, 2, out_dir=tmp_path)
    model = load_model(path, "float32", family=get_family(family))
    assert ranks[0]["params"].keys() == dict(model.named_parameters()).keys()
    for n, p in model.named_parameters():
        assert torch.equal(ranks[0]["params"][n], p.detach()), n
    for r in ranks:
        assert r["buffers"].keys() == dict(model.named_buffers()).keys()
        for n, b in model.named_buffers():
            assert torch.equal(r["buffers"][n], b), n
        assert 0.4 < r["share"] < 0.6  # sharded: not every rank holding everything


def test_fsdp2_load_names_the_weight_a_checkpoint_lacks(text_model_path, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    from training_helpers import run_two_ranks

    broken = tmp_path / "ckpt"
    shutil.copytree(text_model_path, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})

    (tmp_path / "out").mkdir()
    [rank] = run_two_ranks(_sharded_load_rank, str(broken), 1, out_dir=tmp_path / "out", world_size=1)
    assert "lacks 1 weights, e.g. ['model.layers.1.mlp.up_proj.weight']" in rank["error"]
