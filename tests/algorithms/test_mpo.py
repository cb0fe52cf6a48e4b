"""MPO: each named term by hand, their linear combination, BCO delta EMA, gradcheck."""

import math

import pytest
import torch

from omni_rl.algorithms.mpo import bco_delta_update, bco_loss, dpo_sigmoid_loss, mpo_loss, sft_loss

ATOL = 1e-6


def _nls(x: float) -> float:  # -log sigmoid(x)
    return math.log1p(math.exp(-x))


def _pairs():
    # pc - rc = 2, pr - rr = -1 (log-ratios), as [1]-shaped float64 tensors
    pc = torch.tensor([-10.0], dtype=torch.float64)
    rc = torch.tensor([-12.0], dtype=torch.float64)
    pr = torch.tensor([-20.0], dtype=torch.float64)
    rr = torch.tensor([-19.0], dtype=torch.float64)
    return pc, pr, rc, rr


def test_dpo_hand_value():
    # beta 0.1: -log sig(0.1 * (2 - (-1))) = -log sig(0.3) = 0.554355
    loss = dpo_sigmoid_loss(*_pairs(), beta=0.1)
    assert abs(loss.item() - 0.554355) < 1e-6
    assert abs(loss.item() - _nls(0.3)) < 1e-12


def test_bco_hand_value():
    # delta 0: -log sig(0.1*2 - 0) - log sig(-(0.1*(-1) - 0)) = -log sig(0.2) - log sig(0.1)
    #        = 0.598139 + 0.644397 = 1.242536
    loss = bco_loss(*_pairs(), beta=0.1, delta=0.0)
    assert abs(loss.item() - 1.242536) < 1e-6
    # delta 0.05 (tensor): -log sig(0.2 - 0.05) - log sig(-(-0.1 - 0.05)) = 2 * -log sig(0.15) = 2 * 0.620957
    loss = bco_loss(*_pairs(), beta=0.1, delta=torch.tensor(0.05, dtype=torch.float64))
    assert abs(loss.item() - 2 * _nls(0.15)) < 1e-12
    assert abs(loss.item() - 1.241914) < 1e-6


def test_sft_is_named_identity():
    nll = torch.tensor([0.7, 1.2])
    assert torch.equal(sft_loss(nll), nll)


@pytest.mark.parametrize("w_pref, w_quality, w_sft", [(0.8, 0.2, 1.0), (0.8, 0.2, 0.0), (1.0, 0.0, 0.0), (0, 1, 0)])
def test_mpo_linear_combination(w_pref, w_quality, w_sft):
    # L = w_p * 0.554355 + w_q * 1.242536 + w_g * 0.5; e.g. (0.8, 0.2, 1.0): 0.443484 + 0.248507 + 0.5 = 1.191991
    # (no division by w_p + w_q + w_g = 2.0)
    nll = torch.tensor([0.5], dtype=torch.float64)
    loss, metrics = mpo_loss(*_pairs(), beta=0.1, delta=0.0, w_pref=w_pref, w_quality=w_quality, w_sft=w_sft,
                             chosen_nll=nll)
    expected = w_pref * _nls(0.3) + w_quality * (_nls(0.2) + _nls(0.1)) + w_sft * 0.5
    assert abs(loss.item() - expected) < 1e-12
    if (w_pref, w_quality, w_sft) == (0.8, 0.2, 1.0):
        assert abs(loss.item() - 1.191991) < 1e-6
    # rewards: chosen 0.1*2 = 0.2, rejected 0.1*(-1) = -0.1, margin 0.3, accuracy 1
    assert abs(metrics["reward_margin"].item() - 0.3) < ATOL
    assert metrics["reward_accuracy"].item() == 1.0
    torch.testing.assert_close(metrics["chosen_rewards"], torch.tensor([0.2], dtype=torch.float64))
    torch.testing.assert_close(metrics["rejected_rewards"], torch.tensor([-0.1], dtype=torch.float64))
    assert abs(metrics["pref_loss"].item() - _nls(0.3)) < 1e-12
    assert abs(metrics["sft_loss"].item() - 0.5) < 1e-12


def test_mpo_sft_needs_nll():
    with pytest.raises(ValueError, match="chosen_nll"):
        mpo_loss(*_pairs(), beta=0.1, delta=0.0, w_pref=0.8, w_quality=0.2, w_sft=1.0)
    loss, metrics = mpo_loss(*_pairs(), beta=0.1, delta=0.0, w_pref=0.8, w_quality=0.2, w_sft=0.0)
    assert "sft_loss" not in metrics
    assert abs(loss.item() - (0.8 * 0.554355 + 0.2 * 1.242536)) < 1e-6  # 0.443484 + 0.248507 = 0.691991


def test_logsigmoid_is_stable():
    big = torch.tensor([1e4], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    # log-ratio gap 2e4 * beta 0.1 = 2000: DPO loss -> 0; the opposite sign -> 2000 (no inf)
    assert dpo_sigmoid_loss(big, -big, zero, zero, beta=0.1).item() == pytest.approx(0.0, abs=1e-12)
    assert dpo_sigmoid_loss(-big, big, zero, zero, beta=0.1).item() == pytest.approx(2000.0)
    assert torch.isfinite(bco_loss(-big, big, zero, zero, beta=0.1, delta=0.0)).all()


def test_bco_delta_update():
    # delta 0.5, rewards cat([0.2, 0.4], [-0.1, -0.3]) mean 0.05 -> 0.99*0.5 + 0.01*0.05 = 0.4955
    d = bco_delta_update(0.5, torch.tensor([0.2, 0.4], dtype=torch.float64),
                         torch.tensor([-0.1, -0.3], dtype=torch.float64))
    assert d.dim() == 0 and abs(d.item() - 0.4955) < 1e-12
    # tensor delta, custom momentum 0.9: 0.9*0.4955 + 0.1*(1.0) = 0.54595
    d2 = bco_delta_update(d, torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64),
                          momentum=0.9)
    assert abs(d2.item() - 0.54595) < 1e-12
    # delta_0 = 0, mean over chosen+rejected (not mean of means): cat([3], [0, 0]) mean 1 -> 0.01
    d3 = bco_delta_update(0.0, torch.tensor([3.0]), torch.tensor([0.0, 0.0]))
    assert abs(d3.item() - 0.01) < 1e-7
    assert not d3.requires_grad


def test_mpo_gradcheck():
    torch.manual_seed(0)
    pc = (-torch.rand(4, dtype=torch.float64) * 10).requires_grad_(True)
    pr = (-torch.rand(4, dtype=torch.float64) * 10).requires_grad_(True)
    nll = torch.rand(4, dtype=torch.float64, requires_grad=True)
    rc = pc.detach() + torch.randn(4, dtype=torch.float64)
    rr = pr.detach() + torch.randn(4, dtype=torch.float64)

    def f(a, b, c):
        return mpo_loss(a, b, rc, rr, beta=0.1, delta=0.03, w_pref=0.8, w_quality=0.2, w_sft=1.0, chosen_nll=c)[0]

    assert torch.autograd.gradcheck(f, (pc, pr, nll), eps=1e-6, atol=1e-8)


def test_mpo_gradient_hand_value():
    # dL/dpc = w_p * -beta * sig(-0.3) + w_q * -beta * sig(-0.2)
    #        = 0.8 * -0.1 * 0.425557 + 0.2 * -0.1 * 0.450166 = -0.034045 - 0.009003 = -0.043048
    pc, pr, rc, rr = _pairs()
    pc.requires_grad_(True)
    loss, _ = mpo_loss(pc, pr, rc, rr, beta=0.1, delta=0.0, w_pref=0.8, w_quality=0.2, w_sft=0.0)
    loss.sum().backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -0.8 * 0.1 * sig(-0.3) - 0.2 * 0.1 * sig(-0.2)
    assert abs(pc.grad.item() - expected) < 1e-12
    assert abs(pc.grad.item() - (-0.043048)) < 1e-6
