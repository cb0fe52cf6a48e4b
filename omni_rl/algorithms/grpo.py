"""GRPO with DAPO's token-level loss: a PPO-clip ratio per token (Shao et al., 2024, arXiv:2402.03300; Yu et al.,
2025, DAPO, arXiv:2503.14476).

Equation (sequence i of the step, response-token mask m_it, group-normalised advantage A_i broadcast to its tokens):

    r_it = exp(logp_it - old_logp_it)                                     # token-level ratio
    L_it = -min(r_it A_i, clip(r_it, 1 - eps_low, 1 + eps_high) A_i)      # clip-higher: eps_high > eps_low
    L    = sum_i w_i sum_t m_it L_it / sum_i w_i n_i,   n_i = sum_t m_it  # token mean over the whole step (DAPO)

Gradient: dL_it / dlogp_it = -r_it A_i on the unclipped branch, and 0 where the clipped branch is the min (A_i > 0
and r_it > 1 + eps_high, or A_i < 0 and r_it < 1 - eps_low); each token clips on its own.

Aggregation: this function returns each sequence's SUM of token losses ``[B]`` (sum_t m_it L_it) and never
normalises. The trainer divides the weighted sum by the step's GLOBAL weighted response-token count (the objective's
`count`) through ``omni_rl.algorithms.normalization.normalized_sum``, which makes the step loss DAPO's token mean
whatever the split into ranks and micro-batches.

Deviations from the papers:
- No KL term inside (DAPO drops it; GRPO's paper has beta KL): the optional k3 KL to a reference
  (``omni_rl.algorithms.gspo.kl_k3``, per token, summed like the loss) is added by the trainer when ``kl_beta`` != 0.
- GRPO's paper averages tokens per sequence, then sequences; this is DAPO's token mean (long responses weigh more).
- A sequence with an all-zero mask gets a zero loss; padding positions never enter a ratio (no inf / NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor


def grpo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *, eps_low: float, eps_high: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """logp, old_logp, mask [B, T]; advantages [B] -> (per-sequence token-loss sums [B], metrics of 0-dim tensors).

    Metrics (means over valid tokens, detached): ``clip_frac_low`` (A < 0 and r < 1 - eps_low), ``clip_frac_high``
    (A > 0 and r > 1 + eps_high), ``clip_frac`` (their sum: tokens with zero gradient from clipping), ``ratio_mean``
    (mean r), ``log_ratio_abs_mean`` (mean |log r|).
    """
    mask = mask.to(logp.dtype)  # [B, T]
    advantages = advantages.detach().to(logp.dtype)  # [B]
    log_ratio = torch.where(mask > 0, logp - old_logp.detach(), torch.zeros_like(logp))  # [B, T]; padding may be inf
    ratio = torch.exp(log_ratio)  # [B, T]
    adv = advantages[:, None]  # [B, 1]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)  # [B, T]
    per_seq_loss = -(surrogate * mask).sum(dim=-1)  # [B]

    with torch.no_grad():
        n_valid = mask.sum().clamp(min=1)
        low = ((ratio < 1 - eps_low) & (adv < 0)).to(logp.dtype) * mask  # [B, T]
        high = ((ratio > 1 + eps_high) & (adv > 0)).to(logp.dtype) * mask  # [B, T]
        metrics = {
            "clip_frac_low": low.sum() / n_valid,
            "clip_frac_high": high.sum() / n_valid,
            "clip_frac": (low + high).sum() / n_valid,
            "ratio_mean": (ratio * mask).sum() / n_valid,
            "log_ratio_abs_mean": (log_ratio.abs() * mask).sum() / n_valid,
        }
    return per_seq_loss, metrics
