"""The GRPO objective in the trainer: the hand values of tests/algorithms/test_grpo.py through `micro_loss` +
`normalized_sum` with the step's token count, a weight-0 sequence, the k3 KL by hand, any split into micro-batches
giving the same loss, and an on-policy step of the worker against its formula."""

from __future__ import annotations

import math

import pytest
import torch
from training_helpers import TEXT, text_batch

from omni_rl.algorithms.normalization import normalized_sum
from omni_rl.config.schema import AlgorithmConfig, GRPOConfig
from omni_rl.models.families import resolve_family
from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
from omni_rl.training.forward import ScoreOutput
from omni_rl.training.objectives import build_objective
from omni_rl.training.objectives.grpo import GRPOObjective
from omni_rl.training.worker import TrainerWorker, reduce_metrics

ATOL = 1e-9
F64 = torch.float64


def _hand_batch() -> tuple[TrainBatch, ScoreOutput]:
    # the batch of tests/algorithms/test_grpo.py: log-ratios [0.3, -0.1, 0.1] (A = +1) and [-0.25, 0.05] (A = -1)
    old = [[-1.0, -2.0, -0.5], [-0.3, -1.2]]
    ratios = [[0.3, -0.1, 0.1], [-0.25, 0.05]]
    logp = torch.zeros(2, 3, dtype=F64)
    for i in range(2):
        logp[i, :len(old[i])] = torch.tensor(old[i], dtype=F64) + torch.tensor(ratios[i], dtype=F64)
    seqs = [TrainSequence(prompt_index=0, response_ids=[5] * len(o), advantage=a, old_logp=o)
            for o, a in zip(old, (1.0, -1.0))]
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=F64)
    return TrainBatch(prompts=[TrainPrompt(prompt_ids=[1, 2])], sequences=seqs), ScoreOutput(logp, mask, 0)


def test_config_builds_dapo_clip_higher():
    obj = build_objective(AlgorithmConfig(name="grpo"), run_kind="rl")
    assert obj == GRPOObjective(eps_low=0.2, eps_high=0.28, kl_beta=0.0) and not obj.uses_reference
    obj = build_objective(AlgorithmConfig(name="grpo", grpo=GRPOConfig(eps_low=0.1, eps_high=0.3), kl_beta=0.05))
    assert (obj.eps_low, obj.eps_high, obj.kl_beta, obj.uses_reference) == (0.1, 0.3, 0.05, True)


def test_step_loss_is_the_token_mean_of_the_step():
    batch, out = _hand_batch()
    obj = GRPOObjective()
    assert obj.count(batch) == 5.0  # 3 + 2 response tokens
    res = obj.micro_loss(batch, out, None)
    # both sides clipped (see test_grpo.py): (-3.2900083361 + 1.8512710964) / 5 = -0.2877474479
    assert normalized_sum(res.per_unit, res.weights, obj.count(batch)).item() == pytest.approx(-0.2877474479,
                                                                                                abs=ATOL)
    assert res.sums["clip_low"] == pytest.approx(1.0) and res.sums["clip_high"] == pytest.approx(1.0)
    assert res.sums["num_valid"] == 5.0  # per-token clip metrics: 1 of 5 tokens clipped on each side
    # one micro-batch per sequence, each normalised by the step's count: the same step loss
    parts = [obj.micro_loss(batch.select([i]), ScoreOutput(out.logp[i:i + 1], out.mask[i:i + 1], 0), None)
             for i in range(2)]
    total = sum(normalized_sum(p.per_unit, p.weights, 5.0) for p in parts)
    assert total.item() == pytest.approx(-0.2877474479, abs=ATOL)


def test_weight_zero_sequence_leaves_loss_and_count():
    batch, out = _hand_batch()
    batch.sequences[1].weight = 0.0
    obj = GRPOObjective()
    assert obj.count(batch) == 3.0
    res = obj.micro_loss(batch, out, None)
    assert normalized_sum(res.per_unit, res.weights, 3.0).item() == pytest.approx(-3.2900083361 / 3, abs=ATOL)


def test_kl_to_reference_is_summed_over_tokens():
    batch, out = _hand_batch()
    shift = torch.tensor([[0.2, 0.0, 0.0], [-0.1, 0.3, 9.0]], dtype=F64)  # ref - logp; the padded 9.0 is ignored
    obj = GRPOObjective(kl_beta=0.1)
    res = obj.micro_loss(batch, out, lambda: out.logp + shift)
    # k3(x) = e^x - x - 1: seq 0 [0.0214027582, 0, 0], seq 1 [0.0048374180, 0.0498588076] -> token sum 0.0760989838
    # loss = -0.2877474479 + 0.1 * 0.0760989838 / 5 = -0.2862254682
    k3 = [math.exp(x) - x - 1 for x in (0.2, 0.0, 0.0, -0.1, 0.3)]
    assert sum(k3) == pytest.approx(0.0760989838, abs=1e-9)
    assert normalized_sum(res.per_unit, res.weights, 5.0).item() == pytest.approx(-0.2862254682, abs=ATOL)
    # the logged KL is GSPO's: the weighted sum of per-sequence token-mean k3
    assert res.sums["kl_sum"] == pytest.approx(0.0214027582 / 3 + (0.0048374180 + 0.0498588076) / 2, abs=ATOL)


def test_worker_on_policy_step_and_micro_batch_split(text_model_path):
    # on-policy: r = 1 on every token, unclipped -> L_i = -A_i n_i; step loss = sum_i w_i (-A_i n_i) / sum_i w_i n_i
    batch = text_batch(seed=4)
    batch.sequences[3].weight = 0.0
    count = sum(s.weight * len(s.response_ids) for s in batch.sequences)
    expected = -sum(s.weight * s.advantage * len(s.response_ids) for s in batch.sequences) / count
    one = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=9, objective=GRPOObjective())
    split = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=2, objective=GRPOObjective())
    assert one.objective.count(batch) == count
    m_one = reduce_metrics([one.train_step(batch, global_num_seqs=count)], one.objective)
    m_split = reduce_metrics([split.train_step(batch, global_num_seqs=count)], split.objective)
    assert m_one["train/loss"] == pytest.approx(expected, abs=ATOL)
    assert m_split["train/loss"] == pytest.approx(expected, abs=ATOL)
    assert m_one["train/ratio_mean"] == pytest.approx(1.0, abs=1e-12) and m_one["train/clip_frac"] == 0.0
    for (n, a), b in zip(one.model.named_parameters(), split.model.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=0, msg=n)


def _rank_main(rank: int, port: int, model_path: str, batch: TrainBatch, count: float, out: str) -> None:
    from pathlib import Path

    worker = TrainerWorker(model_path, family=resolve_family(model_path), warmup_steps=0,
                           rank=rank, world_size=2, master_addr="127.0.0.1", master_port=port,
                           dtype="float64", lr=1e-3, grad_clip=None, micro_batch_size=2, num_threads=1,
                           objective=GRPOObjective())
    metrics = worker.train_step(batch.split(2)[rank], global_num_seqs=count)
    torch.save({"metrics": metrics, "grads": worker.grad_snapshot()}, Path(out) / f"{rank}.pt")
    worker.shutdown()


@pytest.mark.slow
def test_two_ranks_two_microbatches_equal_one(text_model_path, tmp_path):
    """GRPO's token-count normaliser over real gloo: 2 ranks x micro-batches of 2 (shards 5 / 4) == 1 rank x 1
    micro-batch in float64, off-policy (old_logp shifted by +-0.3, so tokens clip) with a weight-0 sequence."""
    from training_helpers import run_two_ranks

    ref = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", lr=1e-3, grad_clip=None, micro_batch_size=9,
                        num_threads=1, objective=GRPOObjective())
    batch = text_batch(seed=3)
    logp = ref.compute_logp(batch)
    shifts = [0.3, -0.3, 0.0, 0.1, -0.05, 0.3, 0.0, -0.3, 0.02]
    batch = batch.with_old_logp([[v - shifts[i] * (-1) ** t for t, v in enumerate(row)] for i, row in enumerate(logp)])
    batch.sequences[4].weight = 0.0
    count = ref.objective.count(batch)
    one = reduce_metrics([ref.train_step(batch, global_num_seqs=count)], ref.objective)
    assert one["train/clip_frac"] > 0
    ranks = run_two_ranks(_rank_main, text_model_path, batch, count, out_dir=tmp_path)
    dp = reduce_metrics([r["metrics"] for r in ranks], ref.objective)
    for key in ("train/loss", "train/clip_frac_low", "train/clip_frac_high", "train/ratio_mean", "train/grad_norm"):
        assert dp[key] == pytest.approx(one[key], abs=1e-9), key
    for n, p in ref.model.named_parameters():
        if p.requires_grad:
            for r in ranks:
                torch.testing.assert_close(r["grads"][n], p.grad, atol=1e-9, rtol=0, msg=n)
