"""Loss normalisation invariance: 2 ranks x 2 micro-batches == 1 rank x 1 micro-batch (loss and gradient).

The model is a tiny float64 linear-logit policy: logits = x @ W, logp_t = log_softmax(logits_t)[token_t]. 8 sequences
of ragged length; one sequence is overlong-filtered (weight 0). The global count is the number of contributing
sequences of the step (7), computed once; every micro-batch backpropagates sum(per_seq_loss * w) / 7.
"""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from omni_rl.algorithms.gspo import gspo_loss, overlong_weights
from omni_rl.algorithms.normalization import normalized_sum

B, T, D, V = 8, 6, 4, 5
EPS_LOW, EPS_HIGH = 0.2, 0.28


def _data():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)  # [B, T, D]
    tokens = torch.randint(0, V, (B, T), generator=g)  # [B, T]
    lengths = torch.tensor([6, 3, 5, 1, 4, 6, 2, 5])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float64)  # [B, T]
    w_old = torch.randn(D, V, generator=g, dtype=torch.float64)
    w0 = w_old + 0.3 * torch.randn(D, V, generator=g, dtype=torch.float64)  # policy has moved: some seqs clip
    advantages = torch.randn(B, generator=g, dtype=torch.float64)  # [B]
    weights = overlong_weights(torch.tensor([False, False, True, False, False, False, False, False]),
                               dtype=torch.float64)  # [B]
    return x, tokens, mask, w_old, w0, advantages, weights


def _logp(w, x, tokens):
    return torch.log_softmax(x @ w, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)  # [b, T]


def _step(w, data, idx, global_num_seqs):
    """Loss for sequences idx, normalised by the step-wide count; backward accumulates into w.grad."""
    x, tokens, mask, w_old, _, adv, weights = data
    old_logp = _logp(w_old, x[idx], tokens[idx])
    per_seq, _ = gspo_loss(_logp(w, x[idx], tokens[idx]), old_logp, adv[idx], mask[idx],
                           eps_low=EPS_LOW, eps_high=EPS_HIGH)
    loss = normalized_sum(per_seq, weights[idx], global_num_seqs)
    loss.backward()
    return loss.detach()


def _reference(data):
    w = data[4].clone().requires_grad_(True)
    loss = _step(w, data, torch.arange(B), data[6].sum())  # 1 rank x 1 micro-batch, count 7
    return loss, w.grad.clone()


def test_reference_is_mean_over_contributing_sequences():
    data = _data()
    x, tokens, mask, w_old, w0, adv, weights = data
    loss, _ = _reference(data)
    per_seq, metrics = gspo_loss(_logp(w0, x, tokens), _logp(w_old, x, tokens), adv, mask,
                                 eps_low=EPS_LOW, eps_high=EPS_HIGH)
    expected = per_seq[weights > 0].mean()  # 7 contributing sequences
    assert abs(loss.item() - expected.item()) < 1e-12
    assert 0 < metrics["clip_frac"].item() < 1  # the test exercises both branches


def test_in_process_2_ranks_x_2_micro_batches():
    data = _data()
    ref_loss, ref_grad = _reference(data)
    global_count = data[6].sum()  # computed once per step: 7
    total_loss = torch.zeros((), dtype=torch.float64)
    total_grad = torch.zeros(D, V, dtype=torch.float64)
    for rank in range(2):
        w = data[4].clone().requires_grad_(True)  # each rank holds a replica
        for mb in range(2):
            idx = torch.arange(rank * 4 + mb * 2, rank * 4 + mb * 2 + 2)
            total_loss += _step(w, data, idx, global_count)  # grads accumulate over micro-batches
        total_grad += w.grad  # all_reduce(SUM)
    torch.testing.assert_close(total_loss, ref_loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(total_grad, ref_grad, atol=1e-6, rtol=0)


def test_local_mean_normalisation_would_be_wrong():
    """The classic bug: normalising each micro-batch by its own count, then averaging, differs from the reference."""
    data = _data()
    ref_loss, _ = _reference(data)
    x, tokens, mask, w_old, w0, adv, weights = data
    per_seq, _ = gspo_loss(_logp(w0, x, tokens), _logp(w_old, x, tokens), adv, mask, eps_low=EPS_LOW,
                           eps_high=EPS_HIGH)
    local = [normalized_sum(per_seq[i:i + 2], weights[i:i + 2], weights[i:i + 2].sum()) for i in range(0, B, 2)]
    assert abs(torch.stack(local).mean().item() - ref_loss.item()) > 1e-3


def test_zero_count_gives_zero():
    z = normalized_sum(torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor(0.0))
    assert z.item() == 0.0 and torch.isfinite(z)
    assert normalized_sum(torch.tensor([1.0, 3.0]), None, 4).item() == 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_path: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        data = _data()
        weights = data[6]
        # global count, once per step: each rank counts its own contributing sequences, then all_reduce SUM
        local_idx = torch.arange(rank * 4, rank * 4 + 4)
        count = weights[local_idx].sum()
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        w = data[4].clone().requires_grad_(True)
        loss = torch.zeros((), dtype=torch.float64)
        for mb in range(2):
            loss += _step(w, data, local_idx[mb * 2:mb * 2 + 2], count)
        grad = w.grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        dist.all_reduce(loss, op=dist.ReduceOp.SUM)
        if rank == 0:
            torch.save({"loss": loss, "grad": grad, "count": count}, out_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_gloo_2_ranks_x_2_micro_batches(tmp_path):
    out_path = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(2, _free_port(), out_path), nprocs=2, join=True)
    result = torch.load(out_path)
    ref_loss, ref_grad = _reference(_data())
    assert result["count"].item() == 7.0
    torch.testing.assert_close(result["loss"], ref_loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(result["grad"], ref_grad, atol=1e-6, rtol=0)
