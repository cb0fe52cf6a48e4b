"""Group-normalised advantages: hand values, zero-variance groups."""

import torch

from omni_rl.algorithms.advantages import group_advantages


def test_hand_values():
    eps = 1e-6
    # group 0: rewards [1, 0, 0, 1]: mean 0.5, population std 0.5 -> (+-0.5)/(0.5 + eps) = +-0.999998
    # group 1: rewards [1, 0, 0, 0]: mean 0.25, var (0.5625 + 3*0.0625)/4 = 0.1875, std 0.433013
    #          -> [0.75, -0.25, -0.25, -0.25] / 0.433014 = [1.732047, -0.577349, ...]
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    adv, zero_var = group_advantages(rewards, eps=eps)
    s1 = 0.1875 ** 0.5
    expected = torch.tensor([[1, -1, -1, 1], [0.75 / 0.5, -0.25 / 0.5, -0.25 / 0.5, -0.25 / 0.5]], dtype=torch.float64)
    expected[0] *= 0.5 / (0.5 + eps)
    expected[1] *= 0.5 / (s1 + eps)
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)
    assert abs(adv[1, 0].item() - 1.7320468) < 1e-6
    assert zero_var.tolist() == [False, False]


def test_zero_variance_groups_flagged_and_zero():
    rewards = torch.tensor([[0.3, 0.3, 0.3], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5]])
    adv, zero_var = group_advantages(rewards)
    assert zero_var.dtype == torch.bool and zero_var.tolist() == [True, True, False]
    assert (adv[:2] == 0).all()
    # group 2: mean 0.5, std sqrt(0.5/3) = 0.408248 -> [-1.224741, 1.224741, 0]
    torch.testing.assert_close(adv[2], torch.tensor([-1.2247419, 1.2247419, 0.0]), atol=1e-5, rtol=0)
    assert abs(adv[2].sum().item()) < 1e-6
