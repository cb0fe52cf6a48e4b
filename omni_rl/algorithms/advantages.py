"""Group-normalised advantages (GRPO / GSPO).

Equation, for prompt p with G rollouts and rewards r_{p,1..G}:

    A_{p,g} = (r_{p,g} - mean_g r_{p,.}) / (std_g r_{p,.} + eps)

Choices / deviations:
- std is the population std (``unbiased=False``, divide by G); the papers write "std" without saying which, and
  TRL / verl use ``torch.std`` (unbiased, divide by G - 1). The difference only rescales every A by sqrt((G-1)/G)
  (0.968 at G = 16).
- Groups whose rewards are all exactly equal get A = 0 (not (0)/(0 + eps) noise) and are flagged in
  ``zero_variance`` so the controller can count or drop them; they contribute zero loss but still occupy a slot in the
  normalisation count unless the trainer gives them weight 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, *, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """rewards [P, G] -> (advantages [P, G], zero_variance [P] bool)."""
    rewards = rewards.detach()
    zero_variance = (rewards == rewards[:, :1]).all(dim=-1)  # [P]; exact equality, robust to fp noise in std
    mean = rewards.mean(dim=-1, keepdim=True)  # [P, 1]
    std = rewards.std(dim=-1, unbiased=False, keepdim=True)  # [P, 1]
    advantages = (rewards - mean) / (std + eps)  # [P, G]
    advantages = torch.where(zero_variance[:, None], torch.zeros_like(advantages), advantages)
    return advantages, zero_variance
