"""MPO in the trainer worker: the loss and delta of a step against formulas written out here, 1 rank x 1 micro-batch
== 2 ranks x 2 micro-batches (float64, real gloo) for loss, gradients and the delta update, the delta restored from
a checkpoint, and chosen / rejected of one prompt sharing one media encoding."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from training_helpers import OMNI, TEXT

from omni_rl.models.families import resolve_family
from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
from omni_rl.training.objectives.mpo import MPOObjective
from omni_rl.training.worker import TrainerWorker, reduce_metrics

ATOL = 1e-9
MPO = {"beta": 0.1, "w_pref": 0.8, "w_quality": 0.2, "w_sft": 1.0}
KW = dict(dtype="float64", lr=1e-3, warmup_steps=0, grad_clip=None, num_threads=1, objective=MPOObjective(**MPO))


def _pairs(prompt_sizes=(5, 8, 3), pairs_per_prompt=(2, 1, 3), seed=0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    prompts = [TrainPrompt(prompt_ids=torch.randint(10, 400, (n,), generator=g).tolist(), uid=f"p{i}")
               for i, n in enumerate(prompt_sizes)]
    seqs = []
    for p, k in enumerate(pairs_per_prompt):
        for _ in range(k):
            for _role in ("chosen", "rejected"):
                n = int(torch.randint(1, 7, (1,), generator=g))
                seqs.append(TrainSequence(prompt_index=p, response_ids=torch.randint(20, 400, (n,), generator=g)
                                          .tolist(), advantage=0.0))
    return TrainBatch(prompts=prompts, sequences=seqs)


def _with_reference(worker: TrainerWorker, batch: TrainBatch) -> TrainBatch:
    """ref_logp = the summed log-prob under the initial weights, shifted per sequence so log-ratios are not 0."""
    logp = worker.compute_logp(batch)
    for i, (s, row) in enumerate(zip(batch.sequences, logp)):
        s.ref_logp = sum(row) + 0.7 * math.sin(3.0 * i)
    return batch


def _expected(worker: TrainerWorker, batch: TrainBatch, delta: float) -> dict[str, float]:
    """The step's loss, accuracy and next delta from the formulas (not through omni_rl.algorithms.mpo)."""
    logp = worker.compute_logp(batch)
    beta, wp, wq, ws = MPO["beta"], MPO["w_pref"], MPO["w_quality"], MPO["w_sft"]
    losses, correct, rewards, weights = [], [], [], []
    for j in range(0, len(logp), 2):
        c, r = batch.sequences[j], batch.sequences[j + 1]
        lrc, lrr = sum(logp[j]) - c.ref_logp, sum(logp[j + 1]) - r.ref_logp
        logsig = lambda x: -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))  # noqa: E731
        pref = -logsig(beta * (lrc - lrr))
        quality = -logsig(beta * lrc - delta) - logsig(-(beta * lrr - delta))
        nll = -sum(logp[j]) / len(logp[j])
        losses.append(wp * pref + wq * quality + ws * nll)
        margin = beta * lrc - beta * lrr
        correct.append(0.5 if abs(margin) <= 1e-6 else float(margin > 0))
        rewards += [beta * lrc, beta * lrr]
        weights.append(c.weight)
    n = sum(weights)
    kept_rewards = [x for k, x in enumerate(rewards) if weights[k // 2] > 0]
    return {"loss": sum(w * x for w, x in zip(weights, losses)) / n,
            "accuracy": sum(w * x for w, x in zip(weights, correct)) / n,
            "delta": 0.99 * delta + 0.01 * sum(kept_rewards) / len(kept_rewards)}


@pytest.mark.slow
def test_mpo_step_matches_the_formulas(text_model_path):
    worker = TrainerWorker(text_model_path, family=TEXT, micro_batch_size=4, **KW)
    batch = _with_reference(worker, _pairs())
    batch.sequences[4].weight = batch.sequences[5].weight = 0.0  # a pair left out: not in the count nor delta
    worker.objective.delta = 0.3
    want = _expected(worker, batch, delta=0.3)
    count = worker.objective.count(batch)
    assert count == 5.0
    m = reduce_metrics([worker.train_step(batch, global_num_seqs=count)], worker.objective)
    assert m["train/loss"] == pytest.approx(want["loss"], abs=ATOL)
    assert m["mpo/accuracy"] == pytest.approx(want["accuracy"], abs=ATOL)
    assert m["train/num_pairs"] == 5.0 and m["train/num_seqs"] == 12
    assert worker.objective.delta == pytest.approx(want["delta"], abs=ATOL) and m["mpo/delta"] == worker.objective.delta
    total = m["mpo/pref_loss"] * 0.8 + m["mpo/quality_loss"] * 0.2 + m["mpo/sft_loss"] * 1.0
    assert total == pytest.approx(m["train/loss"], abs=ATOL)  # the terms combine linearly, no renormalisation


def _rank_main(rank: int, port: int, model_path: str, batch: TrainBatch, out: str) -> None:
    worker = TrainerWorker(model_path, family=resolve_family(model_path),
                           rank=rank, world_size=2, master_addr="127.0.0.1", master_port=port,
                           micro_batch_size=4, **KW)
    worker.objective.delta = 0.3
    shard = batch.split(2, unit=2)[rank]
    metrics = worker.train_step(shard, global_num_seqs=worker.objective.count(batch))
    torch.save({"metrics": metrics, "n_micro": len(shard.chunks(4, unit=2)), "delta": worker.objective.delta,
                "grads": {n: p.grad for n, p in worker.model.named_parameters() if p.requires_grad},
                "params": {n: p.detach() for n, p in worker.model.named_parameters()}}, Path(out) / f"{rank}.pt")
    worker.shutdown()


@pytest.mark.slow
def test_mpo_two_ranks_two_microbatches_equal_one(text_model_path, tmp_path):
    from training_helpers import run_two_ranks

    ref = TrainerWorker(text_model_path, family=TEXT, micro_batch_size=12, **KW)
    batch = _with_reference(ref, _pairs())  # 6 pairs: 3 per rank, micro-batches of 2 pairs + 1 pair
    ref.objective.delta = 0.3
    one = reduce_metrics([ref.train_step(batch, global_num_seqs=ref.objective.count(batch))], ref.objective)

    ranks = run_two_ranks(_rank_main, text_model_path, batch, out_dir=tmp_path)
    assert [r["n_micro"] for r in ranks] == [2, 2]
    dp = reduce_metrics([r["metrics"] for r in ranks], ref.objective)
    for key in ("train/loss", "mpo/accuracy", "mpo/reward_margin", "mpo/pref_loss", "mpo/quality_loss",
                "train/grad_norm"):
        assert abs(dp[key] - one[key]) < ATOL, key
    for r in ranks:  # the delta update is global: every rank holds the one-rank value
        assert abs(r["delta"] - ref.objective.delta) < 1e-12
        for n, p in ref.model.named_parameters():
            if p.requires_grad:
                torch.testing.assert_close(r["grads"][n], p.grad, atol=ATOL, rtol=0, msg=n)
            torch.testing.assert_close(r["params"][n], p.detach(), atol=ATOL, rtol=0, msg=n)


@pytest.mark.slow
def test_delta_is_checkpointed_and_restored(text_model_path, tmp_path):
    a = TrainerWorker(text_model_path, family=TEXT, micro_batch_size=4, **KW)
    batch = _with_reference(a, _pairs(seed=1))
    for _ in range(2):
        a.train_step(batch, global_num_seqs=a.objective.count(batch))
    assert a.objective.delta != 0.0
    a.save(tmp_path / "ckpt")
    b = TrainerWorker(text_model_path, family=TEXT, micro_batch_size=4, **KW)
    assert b.objective.delta == 0.0
    b.load(tmp_path / "ckpt")
    assert b.objective.delta == a.objective.delta and b.step == a.step == 2
    ma = a.train_step(batch, global_num_seqs=6.0)
    mb = b.train_step(batch, global_num_seqs=6.0)
    assert ma["loss"] == mb["loss"] and ma["mpo/delta"] == mb["mpo/delta"]


@pytest.mark.slow
def test_chosen_and_rejected_share_one_media_encoding(omni_model_path):
    from training_helpers import mm_prompt

    from omni_rl.models.policy import load_processor

    proc = load_processor(omni_model_path, OMNI)
    batch = _pairs(prompt_sizes=(1, 1), pairs_per_prompt=(2, 1))
    batch.prompts = [mm_prompt(proc, "image", 0), mm_prompt(proc, "image+audio", 1)]
    worker = TrainerWorker(omni_model_path, family=OMNI, micro_batch_size=16, **KW)
    batch = _with_reference(worker, batch)
    m = reduce_metrics([worker.train_step(batch, global_num_seqs=3.0)], worker.objective)
    assert m["encoder/forwards"] == 2  # one encoder pass per prompt, not per sequence (6)
    assert m["train/encoder_media_items"] == 3  # image; image + audio
