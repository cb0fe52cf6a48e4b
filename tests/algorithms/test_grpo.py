"""GRPO (DAPO token-level) loss: hand-computed values and gradients with the clip active on both sides and inactive,
a per-token formula written out here on random inputs, and gradcheck."""

import math

import pytest
import torch

from omni_rl.algorithms.grpo import grpo_loss
from omni_rl.algorithms.normalization import normalized_sum

ATOL = 1e-9


def _inputs(dtype=torch.float64):
    # seq 0 (A = +1): token log-ratios [0.3, -0.1, 0.1]; the padded slot holds 5.0 and must be ignored
    # seq 1 (A = -1): token log-ratios [-0.25, 0.05]; two padded slots (one would be inf in old_logp)
    log_ratio = torch.tensor([[0.3, -0.1, 0.1, 5.0], [-0.25, 0.05, 7.0, -3.0]], dtype=dtype)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=dtype)
    old_logp = torch.tensor([[-1.0, -2.0, -0.5, -0.7], [-0.3, -1.2, -2.2, float("-inf")]], dtype=dtype)
    logp = (old_logp.nan_to_num(neginf=-0.9) + log_ratio).requires_grad_(True)
    advantages = torch.tensor([1.0, -1.0], dtype=dtype)
    return logp, old_logp, advantages, mask


# r = exp(log-ratio): seq 0 [1.3498588076, 0.9048374180, 1.1051709181], seq 1 [0.7788007831, 1.0512710964]
CASES = {
    # clip range [0.8, 1.28]: seq 0 token 0 (A > 0, r 1.35 > 1.28) takes 1.28, no gradient; seq 1 token 0
    # (A < 0, r 0.779 < 0.8) takes 0.8, no gradient; the other three tokens are unclipped.
    # seq 0: -(1.28 + 0.9048374180 + 1.1051709181) = -3.2900083361;  seq 1: 0.8 + 1.0512710964 = 1.8512710964
    # token mean over 5 tokens: (-3.2900083361 + 1.8512710964) / 5 = -0.2877474479
    # d loss / d logp_t = -A r_t / 5 where unclipped, else 0
    "both_sides_clipped": dict(
        eps=(0.2, 0.28), per_seq=[-3.2900083361, 1.8512710964], loss=-0.2877474479,
        grad=[[0.0, -0.9048374180 / 5, -1.1051709181 / 5, 0.0], [0.0, 1.0512710964 / 5, 0.0, 0.0]],
        clip_low=0.2, clip_high=0.2),
    # clip range [0.5, 1.5]: nothing clipped
    # seq 0: -(1.3498588076 + 0.9048374180 + 1.1051709181) = -3.3598671437;  seq 1: 0.7788007831 + 1.0512710964
    # = 1.8300718795;  token mean: -1.5297952642 / 5 = -0.3059590528
    "inactive": dict(
        eps=(0.5, 0.5), per_seq=[-3.3598671437, 1.8300718795], loss=-0.3059590528,
        grad=[[-1.3498588076 / 5, -0.9048374180 / 5, -1.1051709181 / 5, 0.0],
              [0.7788007831 / 5, 1.0512710964 / 5, 0.0, 0.0]],
        clip_low=0.0, clip_high=0.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_values_and_gradient(case):
    want = CASES[case]
    logp, old_logp, adv, mask = _inputs()
    per_seq, m = grpo_loss(logp, old_logp, adv, mask, eps_low=want["eps"][0], eps_high=want["eps"][1])
    torch.testing.assert_close(per_seq, torch.tensor(want["per_seq"], dtype=torch.float64), atol=ATOL, rtol=0)
    # the trainer's step loss: sum_i w_i L_i / (the step's weighted token count, 3 + 2 = 5)
    loss = normalized_sum(per_seq, torch.ones(2, dtype=torch.float64), 5.0)
    assert loss.item() == pytest.approx(want["loss"], abs=ATOL)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor(want["grad"], dtype=torch.float64), atol=ATOL, rtol=0)
    assert m["clip_frac_low"].item() == pytest.approx(want["clip_low"], abs=1e-12)
    assert m["clip_frac_high"].item() == pytest.approx(want["clip_high"], abs=1e-12)
    assert m["clip_frac"].item() == pytest.approx(want["clip_low"] + want["clip_high"], abs=1e-12)
    # ratio mean over the 5 tokens: 5.1899390232 / 5; |log r| mean: (0.3 + 0.1 + 0.1 + 0.25 + 0.05) / 5 = 0.16
    assert m["ratio_mean"].item() == pytest.approx(5.1899390232 / 5, abs=ATOL)
    assert m["log_ratio_abs_mean"].item() == pytest.approx(0.16, abs=ATOL)


def test_positive_advantage_below_the_low_clip_keeps_its_gradient():
    # A = +1, r = e^-0.25 = 0.7788007831 < 1 - eps_low = 0.8: min(r A, 0.8 A) = r A (unclipped) -> d/dlogp = -r
    logp = torch.tensor([[-0.25]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 1, dtype=torch.float64)
    per_seq, m = grpo_loss(logp, old, torch.tensor([1.0], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64),
                           eps_low=0.2, eps_high=0.28)
    per_seq.sum().backward()
    assert per_seq.item() == pytest.approx(-0.7788007831, abs=ATOL)
    assert logp.grad.item() == pytest.approx(-0.7788007831, abs=ATOL)
    assert m["clip_frac"].item() == 0.0


def _per_token_reference(logp, old_logp, adv, mask, eps_low, eps_high):
    """The formula token by token in Python floats: L_i = sum_t m_it -min(r A, clip(r) A); dL_i/dlogp_it."""
    losses, grads = [], []
    for i in range(len(logp)):
        total, row = 0.0, []
        for t in range(len(logp[i])):
            if not mask[i][t]:
                row.append(0.0)
                continue
            r = math.exp(logp[i][t] - old_logp[i][t])
            a = adv[i]
            clipped = min(max(r, 1 - eps_low), 1 + eps_high)
            total += -min(r * a, clipped * a)
            row.append(-r * a if r * a <= clipped * a else 0.0)
        losses.append(total)
        grads.append(row)
    return losses, grads


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_per_token_formula(seed):
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(5, 7, generator=g, dtype=torch.float64) - 2.0
    logp = (old + 0.4 * torch.randn(5, 7, generator=g, dtype=torch.float64)).requires_grad_(True)
    adv = torch.randn(5, generator=g, dtype=torch.float64)
    mask = (torch.rand(5, 7, generator=g) < 0.8).to(torch.float64)
    mask[0] = 0.0  # an all-masked sequence: loss 0
    per_seq, _ = grpo_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    per_seq.sum().backward()
    want, want_grad = _per_token_reference(logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, 0.28)
    torch.testing.assert_close(per_seq, torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(logp.grad, torch.tensor(want_grad, dtype=torch.float64), atol=1e-12, rtol=0)
    assert per_seq[0].item() == 0.0


def test_gradcheck():
    g = torch.Generator().manual_seed(3)
    old = torch.randn(3, 4, generator=g, dtype=torch.float64)
    # log-ratios kept away from the clip boundaries (where the loss has a kink)
    shift = torch.tensor([[0.05, -0.4, 0.5, 0.1], [-0.1, 0.35, -0.02, 0.6], [0.0, 0.15, -0.5, 0.3]],
                         dtype=torch.float64)
    logp = (old + shift).requires_grad_(True)
    adv = torch.tensor([0.7, -1.3, 0.4], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: grpo_loss(x, old, adv, mask, eps_low=0.2, eps_high=0.28)[0],
                                    (logp,), eps=1e-6, atol=1e-8)
