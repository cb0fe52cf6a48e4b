"""GSPO loss: hand oracle, gradient = paper's sequence gradient, masks, gradcheck, helpers."""

import math

import pytest
import torch

from omni_rl.algorithms.gspo import CLIP_PRESETS, gspo_loss, kl_k3, logprob_error_weights, overlong_weights

ATOL = 1e-6


def _oracle_inputs(dtype=torch.float64):
    # seq 0: valid log-ratios [0.3, -0.1, 0.1] -> mean 0.3/3 = 0.1; the padded slot holds 5.0 and must be ignored
    # seq 1: valid log-ratios [-0.25, 0.05]     -> mean -0.2/2 = -0.1; two padded slots
    log_ratio = torch.tensor([[0.3, -0.1, 0.1, 5.0], [-0.25, 0.05, 7.0, -3.0]], dtype=dtype)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=dtype)
    old_logp = torch.tensor([[-1.0, -2.0, -0.5, -0.7], [-0.3, -1.2, -2.2, -0.9]], dtype=dtype)
    logp = (old_logp + log_ratio).requires_grad_(True)
    advantages = torch.tensor([1.0, -1.0], dtype=dtype)
    return logp, old_logp, advantages, mask


def test_presets():
    assert CLIP_PRESETS == {"recipe": (0.2, 0.28), "paper": (3e-4, 4e-4)}


@pytest.mark.parametrize(
    "eps_low, eps_high, expected",
    [
        # s = [e^0.1, e^-0.1] = [1.105171, 0.904837]; clip range [0.8, 1.2]: nothing clipped.
        # seq0 (A=1):  -min(1.105171, 1.105171)  = -1.105171
        # seq1 (A=-1): -min(-0.904837, -0.904837) = 0.904837           sum = -0.200334
        (0.2, 0.2, [-1.1051709181, 0.9048374180]),
        # recipe clip [0.8, 1.28]: same values, still unclipped         sum = -0.200334
        (0.2, 0.28, [-1.1051709181, 0.9048374180]),
        # paper clip [0.9997, 1.0004]:
        # seq0: clip(1.105171) = 1.0004 -> -min(1.105171, 1.0004) = -1.0004
        # seq1: clip(0.904837) = 0.9997 -> -min(-0.904837, -0.9997) = 0.9997   sum = -0.0007
        (3e-4, 4e-4, [-1.0004, 0.9997]),
    ],
)
def test_oracle(eps_low, eps_high, expected):
    logp, old_logp, adv, mask = _oracle_inputs()
    loss, metrics = gspo_loss(logp, old_logp, adv, mask, eps_low=eps_low, eps_high=eps_high)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64), atol=ATOL, rtol=0)
    # metrics: ratio_mean = (1.105171 + 0.904837)/2 = 1.005004; |log s| mean = 0.1
    torch.testing.assert_close(metrics["ratio_mean"], torch.tensor((math.exp(0.1) + math.exp(-0.1)) / 2,
                                                                   dtype=torch.float64), atol=ATOL, rtol=0)
    torch.testing.assert_close(metrics["log_ratio_abs_mean"], torch.tensor(0.1, dtype=torch.float64),
                               atol=ATOL, rtol=0)
    clipped = 1.0 if eps_low < 0.01 else 0.0  # paper eps: seq0 clipped high, seq1 clipped low
    assert metrics["clip_frac_high"].item() == pytest.approx(0.5 * clipped)
    assert metrics["clip_frac_low"].item() == pytest.approx(0.5 * clipped)
    assert metrics["clip_frac"].item() == pytest.approx(clipped)
    assert all(isinstance(v, torch.Tensor) for v in metrics.values())


def test_oracle_sum_values():
    logp, old_logp, adv, mask = _oracle_inputs()
    loss, _ = gspo_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2)
    assert abs(loss.sum().item() - (-0.200334)) < 1e-6
    loss, _ = gspo_loss(logp, old_logp, adv, mask, eps_low=3e-4, eps_high=4e-4)
    assert abs(loss.sum().item() - (-0.0007)) < 1e-9


def test_gradient_equals_sequence_gradient():
    # Unclipped (eps 0.2): d(-s_i A_i)/d logp_it = -A_i * s_i * m_it / n_i
    # seq0: -1 * 1.105171 / 3 = -0.368390 on its 3 valid tokens; seq1: +1 * 0.904837 / 2 = 0.452419 on 2 tokens.
    logp, old_logp, adv, mask = _oracle_inputs()
    loss, _ = gspo_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2)
    loss.sum().backward()
    s = torch.exp(torch.tensor([0.1, -0.1], dtype=torch.float64))
    expected = -(adv * s / mask.sum(-1))[:, None] * mask
    torch.testing.assert_close(logp.grad, expected, atol=ATOL, rtol=0)
    assert abs(logp.grad[0, 0].item() - (-0.3683903)) < 1e-6
    # Paper eps: both sequences take the clipped branch -> zero gradient everywhere.
    logp, old_logp, adv, mask = _oracle_inputs()
    loss, _ = gspo_loss(logp, old_logp, adv, mask, eps_low=3e-4, eps_high=4e-4)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.zeros_like(logp), atol=0, rtol=0)


def test_clipped_branch_not_min_keeps_gradient():
    # A > 0 and s < 1 - eps_low: min picks s*A (unclipped) -> gradient flows: -A s / n = -1 * e^-0.1 / 2
    logp = torch.tensor([[-0.1, -0.1]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 2, dtype=torch.float64)
    loss, m = gspo_loss(logp, old, torch.tensor([1.0], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64),
                        eps_low=0.01, eps_high=0.01)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.full((1, 2), -math.exp(-0.1) / 2, dtype=torch.float64),
                               atol=ATOL, rtol=0)
    assert m["clip_frac"].item() == 0.0


def test_padding_values_do_not_matter():
    logp, old_logp, adv, mask = _oracle_inputs()
    loss_a, _ = gspo_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.28)
    noise = torch.randn_like(logp) * 10 * (1 - mask)
    loss_b, _ = gspo_loss(logp.detach() + noise, old_logp - noise, adv, mask, eps_low=0.2, eps_high=0.28)
    torch.testing.assert_close(loss_a, loss_b, atol=ATOL, rtol=0)


def test_all_masked_row_zero_loss_finite_grads():
    logp, old_logp, adv, mask = _oracle_inputs()
    mask = mask.clone()
    mask[1] = 0
    logp.data[1, 0] = float("-inf")  # even garbage in padding must not leak
    loss, metrics = gspo_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.28)
    assert loss[1].item() == 0.0
    assert abs(loss[0].item() - (-math.exp(0.1))) < ATOL
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()
    assert (logp.grad[1] == 0).all()
    # metrics only over the valid sequence
    assert abs(metrics["ratio_mean"].item() - math.exp(0.1)) < ATOL
    for v in metrics.values():
        assert torch.isfinite(v).all()


def test_gradcheck():
    torch.manual_seed(0)
    logp = (-torch.rand(3, 5, dtype=torch.float64)).requires_grad_(True)
    old = logp.detach() + 0.05 * torch.randn(3, 5, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64)
    adv = torch.tensor([0.7, -1.3, 0.4], dtype=torch.float64)

    def f(x):
        return gspo_loss(x, old, adv, mask, eps_low=0.2, eps_high=0.28)[0]

    assert torch.autograd.gradcheck(f, (logp,), eps=1e-6, atol=1e-7)
    # also with a clipped sequence (far from the clip boundary)
    old2 = old.clone()
    old2[0] -= 1.0  # s_0 = e^{~1} > 1.28 with A_0 > 0 -> clipped, zero gradient
    assert torch.autograd.gradcheck(lambda x: gspo_loss(x, old2, adv, mask, eps_low=0.2, eps_high=0.28)[0],
                                    (logp,), eps=1e-6, atol=1e-7)


def test_kl_k3():
    # tokens with ref_logp - logp = [ln 2, 0] and mask [1, 1]: k3 = (2 - ln2 - 1) + 0 = 0.306853, mean /2 = 0.153426
    logp = torch.tensor([[-1.0, -0.5, -3.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.0 + math.log(2), -0.5, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(kl_k3(logp, ref, mask), torch.tensor([(1 - math.log(2)) / 2], dtype=torch.float64),
                               atol=ATOL, rtol=0)
    assert kl_k3(logp, ref, torch.zeros_like(mask)).item() == 0.0


def test_overlong_weights():
    w = overlong_weights(torch.tensor([True, False, False]))
    assert w.dtype == torch.float32 and w.tolist() == [0.0, 1.0, 1.0]


def test_logprob_error_weights():
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
    rollout = torch.tensor([[-1.1, -0.9, 5.0], [-2.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    # errors: seq0 (0.1 + 0.1)/2 = 0.1; seq1 1/3 = 0.333333; seq2 all masked -> 0
    w, err = logprob_error_weights(logp, rollout, mask, max_error=0.2)
    torch.testing.assert_close(err, torch.tensor([0.1, 1 / 3, 0.0]), atol=ATOL, rtol=0)
    assert w.tolist() == [1.0, 0.0, 1.0]
