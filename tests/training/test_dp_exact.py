"""Exact loss normalisation across ranks and micro-batches, with real torch.distributed (gloo, 2 processes).

1 rank x 1 micro-batch (9 sequences) must equal 2 ranks x 2 micro-batches (shards of 5 / 4 sequences, micro-batch
size 3), in float64, for the step loss, every gradient (after the SUM all-reduce) and the updated weights. The batch
exercises what breaks naive normalisations: unequal shard and micro-batch sizes, a prompt whose rollouts span both
ranks, a zero-weight (overlong-filtered) sequence, a sequence masked by the train-vs-rollout logprob threshold,
clipped ratios (old_logp shifted by +-0.3), and for omni a rank whose shard has no audio (its audio-encoder grads
are zeros, all-reduced like any other).
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import torch
from training_helpers import OMNI

from omni_rl.models.families import resolve_family
from omni_rl.training.batch import TrainBatch
from omni_rl.training.objectives.gspo import GSPOObjective
from omni_rl.training.worker import TrainerWorker, reduce_metrics

ATOL = 1e-6
KW = dict(dtype="float64", lr=1e-3, warmup_steps=0, grad_clip=None,
          objective=GSPOObjective(eps_low=0.2, eps_high=0.28),
          max_logprob_error=0.5, num_threads=1)


def _rank_main(rank: int, port: int, model_path: str, batch: TrainBatch, strategy: str, micro: int,
               out: str) -> None:
    strategy, *flags = strategy.split("+")  # "fsdp2+ac": with activation checkpointing; "+po": prompt once
    worker = TrainerWorker(model_path, family=resolve_family(model_path),
                           rank=rank, world_size=2, master_addr="127.0.0.1", master_port=port,
                           micro_batch_size=micro, strategy=strategy, activation_checkpointing="ac" in flags,
                           prompt_once="po" in flags, **KW)
    shard = batch.split(2)[rank]
    metrics = worker.train_step(shard, global_num_seqs=batch.num_weighted)
    local = {n: p.to_local().numel() if hasattr(p, "to_local") else p.numel() for n, p in worker.model.named_parameters()}
    torch.save({"metrics": metrics, "n_micro": len(shard.chunks(micro)), "local_numel": local,
                "grads": worker.grad_snapshot(), "params": worker.params_snapshot()}, Path(out) / f"{rank}.pt")
    worker.shutdown()


def _prepare(model_path: str, batch: TrainBatch) -> tuple[TrainerWorker, TrainBatch]:
    ref = TrainerWorker(model_path, family=resolve_family(model_path), micro_batch_size=batch.num_sequences, **KW)
    logp = ref.compute_logp(batch)
    shifts = [0.3, -0.3, 0.0, 0.1, -0.05, 0.3, 0.0, -0.3, 0.02]
    batch = batch.with_old_logp([[v - shifts[i] for v in row] for i, row in enumerate(logp)])
    for i, s in enumerate(batch.sequences):
        s.rollout_logp = [v + (1.0 if i == 6 else 0.01) for v in logp[i]]  # seq 6: error 1.0 > 0.5 -> masked
    batch.sequences[4].weight = 0.0  # overlong-filtered
    return ref, batch


def _run(model_path: str, batch: TrainBatch, tmp_path: Path, *, strategy: str = "replicated", micro: int = 3,
         n_micro: tuple[int, int] = (2, 2)) -> None:
    ref, batch = _prepare(model_path, batch)
    m_ref = ref.train_step(batch, global_num_seqs=batch.num_weighted)
    assert batch.num_weighted == 8.0

    from training_helpers import run_two_ranks

    ranks = run_two_ranks(_rank_main, model_path, batch, strategy, micro, out_dir=tmp_path)
    assert tuple(r["n_micro"] for r in ranks) == n_micro
    if strategy.startswith("fsdp2"):  # each rank holds about half of every parameter
        whole = {n: p.numel() for n, p in ref.model.named_parameters()}
        assert sum(ranks[0]["local_numel"].values()) + sum(ranks[1]["local_numel"].values()) == sum(whole.values())
        assert sum(ranks[0]["local_numel"].values()) <= sum(whole.values()) * 0.55

    dp = reduce_metrics([r["metrics"] for r in ranks])
    one = reduce_metrics([m_ref])
    assert abs(dp["train/loss"] - one["train/loss"]) < ATOL
    assert one["train/logprob_masked_seqs"] == dp["train/logprob_masked_seqs"] == 1.0
    assert one["train/clip_frac"] > 0  # the clip is active on some sequences
    for key in ("train/clip_frac_low", "train/clip_frac_high", "train/ratio_mean", "train/grad_norm"):
        assert abs(dp[key] - one[key]) < ATOL, key
    ref_grads = {n: p.grad for n, p in ref.model.named_parameters() if p.requires_grad}
    for r in ranks:
        assert set(r["grads"]) == set(ref_grads)
        for n, g in ref_grads.items():
            torch.testing.assert_close(r["grads"][n], g, atol=ATOL, rtol=0, msg=n)
        for n, p in ref.model.named_parameters():
            torch.testing.assert_close(r["params"][n], p.detach(), atol=ATOL, rtol=0, msg=n)


@pytest.mark.slow
def test_text_two_ranks_two_microbatches_equal_one(text_model_path, tmp_path):
    from training_helpers import text_batch

    _run(text_model_path, text_batch(seed=3), tmp_path)


@pytest.mark.slow
def test_omni_two_ranks_two_microbatches_equal_one(omni_model_path, tmp_path):
    from training_helpers import mm_prompt, random_sequences
    from omni_rl.models.policy import load_processor

    proc = load_processor(omni_model_path, OMNI)
    # shard 0 = image prompt x3 + text x2, shard 1 = text x1 + image+audio x3: rank 0 never sees audio
    prompts = [mm_prompt(proc, "image", 0), mm_prompt(proc, "text", 1), mm_prompt(proc, "image+audio", 2)]
    _run(omni_model_path, TrainBatch(prompts=prompts, sequences=random_sequences(3, 3, seed=5)), tmp_path)


@pytest.mark.slow
def test_fsdp2_text_uneven_microbatch_counts_equal_one_rank(text_model_path, tmp_path):
    """FSDP2 with activation checkpointing, 2 ranks, micro-batch size 4: shards of 5 / 4 sequences -> 2 / 1
    micro-batches (rank 1 runs a padding micro-batch so both ranks gather the same weights): loss, gradients and
    updated weights equal 1 rank x 1."""
    from training_helpers import text_batch

    _run(text_model_path, text_batch(seed=3), tmp_path, strategy="fsdp2+ac", micro=4, n_micro=(2, 1))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp2", "fsdp2+po"])
def test_fsdp2_omni_rank_without_audio_equals_one_rank(strategy, omni_model_path, tmp_path):
    """FSDP2, 2 ranks x 2 micro-batches, rank 0 never sees audio (its audio encoder is not called, yet it takes part
    in every gather and reduce-scatter): equal to 1 rank x 1 micro-batch. "+po": the ranks score with
    prompt_once (two decoder passes per micro-batch on every rank, so the gathers still match)."""
    from training_helpers import mm_prompt, random_sequences
    from omni_rl.models.policy import load_processor

    proc = load_processor(omni_model_path, OMNI)
    prompts = [mm_prompt(proc, "image", 0), mm_prompt(proc, "text", 1), mm_prompt(proc, "image+audio", 2)]
    _run(omni_model_path, TrainBatch(prompts=prompts, sequences=random_sequences(3, 3, seed=5)), tmp_path,
         strategy=strategy)


def _rank_train_main(rank: int, port: int, model_path: str, batch: TrainBatch, out: str) -> None:
    worker = TrainerWorker(model_path, family=resolve_family(model_path),
                           rank=rank, world_size=2, master_addr="127.0.0.1", master_port=port,
                           micro_batch_size=2, **KW)
    metrics = worker.train(batch.split(2)[rank], global_num_seqs=batch.num_weighted, num_minibatches=2)
    torch.save({"metrics": metrics, "params": {n: p.detach() for n, p in worker.model.named_parameters()}},
               Path(out) / f"train{rank}.pt")
    worker.shutdown()


@pytest.mark.slow
def test_train_two_ranks_two_minibatches_equal_hand_steps(text_model_path, tmp_path):
    """`TrainerWorker.train` on 2 gloo ranks with 2 mini-batches (2 optimizer steps) == the same 2 steps by hand on
    one rank: old_logp filled before the first update (seqs 0-2 have none), the logprob-error mask (seq 6) folded into
    the weights BEFORE the count, per-mini-batch counts all-reduced. Shards 0..4 | 5..8 -> mini-batch 0 = {0, 1, 2, 5,
    6} (count 4: seq 6 masked), mini-batch 1 = {3, 4, 7, 8} (count 3: seq 4 overlong)."""
    from training_helpers import text_batch

    from omni_rl.training.dist import free_port

    ref, batch = _prepare(text_model_path, text_batch(seed=6))
    for s in batch.sequences[:3]:
        s.old_logp = None
    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank_train_main, args=(r, port, text_model_path, batch, str(tmp_path)))
             for r in range(2)]
    for p in procs:
        p.start()

    logp = ref.compute_logp(batch)  # hand reference on the in-process worker (1 rank, 1 micro-batch per step)
    hand = batch.with_old_logp([s.old_logp or logp[i] for i, s in enumerate(batch.sequences)])
    hand.sequences[6].weight = 0.0
    losses = []
    for idx in ([0, 1, 2, 5, 6], [3, 4, 7, 8]):
        mb = hand.select(idx)
        losses.append(reduce_metrics([ref.train_step(mb, global_num_seqs=mb.num_weighted, logprob_mask=False)]))
    assert [m["train/num_weighted_seqs"] for m in losses] == [4.0, 3.0]

    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0, f"rank process exit code {p.exitcode}"
    ranks = [torch.load(tmp_path / f"train{r}.pt", weights_only=True) for r in range(2)]
    m0, m1 = ranks[0]["metrics"], ranks[1]["metrics"]
    assert m0 == {**m1, "train/time_s": m0["train/time_s"]}  # metrics all-reduced: the same on both ranks
    assert m0["train/optimizer_steps"] == 2 and m0["train/masked_seqs"] == 1.0 and m0["train/num_seqs"] == 9
    assert abs(m0["train/loss"] - (losses[0]["train/loss"] + losses[1]["train/loss"]) / 2) < ATOL
    assert m0["logprob/mismatch_max"] == pytest.approx(1.0, abs=1e-9)
    for r in ranks:
        for n, p in ref.model.named_parameters():
            torch.testing.assert_close(r["params"][n], p.detach(), atol=ATOL, rtol=0, msg=n)
