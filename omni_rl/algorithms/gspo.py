"""GSPO: Group Sequence Policy Optimization (Zheng et al., 2025, arXiv:2507.18071), plus its optional helpers.

Equation (per sequence i with response-token mask m_it, n_i = sum_t m_it):

    log s_i = (1 / n_i) * sum_t m_it * (logp_it - old_logp_it)          # sequence-level (length-normalised) ratio
    L_i     = -min(s_i * A_i, clip(s_i, 1 - eps_low, 1 + eps_high) * A_i)

Gradient (paper eq. 10): d(s_i A_i) = s_i A_i * (1 / n_i) * sum_t m_it * d logp_it for the unclipped branch, and 0
when the clipped branch is the min (A_i > 0 and s_i > 1 + eps_high, or A_i < 0 and s_i < 1 - eps_low).

Implementation: the token-detach form (GSPO-token, paper eq. 13),

    log s_it = sg(log s_i) + logp_it - sg(logp_it)        # value s_i, gradient s_i * d logp_it
    L_i      = (1 / n_i) * sum_t m_it * -min(s_it A_i, clip(s_it) A_i)

Its value and gradient equal the sequence form above (all s_it share the value s_i, so every token takes the same clip
branch); it also accepts per-token advantages later without a rewrite.

Aggregation: this function returns the per-sequence loss ``[B]`` and NEVER normalises by the batch. The trainer sums
``per_seq_loss * weight`` over all its sequences and divides by the GLOBAL number of sequences of the optimizer step
(across ranks and micro-batches): ``omni_rl.algorithms.normalization.normalized_sum``.

Deviations from the paper:
- Clip range: ``CLIP_PRESETS["recipe"]`` (public Nano Omni configs) is the default we ship; the paper's is
  ``CLIP_PRESETS["paper"]`` (both in ``omni_rl.algorithms.clip``).
- Optional k3 KL to a reference policy (``kl_k3``; the recipe uses KL 0, so it is off by default and lives outside
  ``gspo_loss``); sequence weights for overlong filtering (``overlong_weights``) and for train-vs-rollout log-prob
  mismatch (``logprob_error_weights``) are applied by the trainer as ``weights`` in ``normalized_sum``.
- A sequence with an all-zero mask gets L_i = 0 and s_i = 1 (no NaN); it is excluded from the metrics.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omni_rl.algorithms.clip import CLIP_PRESETS  # noqa: F401  (GSPO's clip ranges; their home is clip.py)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """x, mask [B, T] -> [B]; rows with an all-zero mask give 0."""
    return (x * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


def gspo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *, eps_low: float, eps_high: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """logp, old_logp, mask [B, T]; advantages [B] -> (per_seq_loss [B], metrics of 0-dim tensors).

    Metrics (means over sequences with at least one valid token, detached):
    ``clip_frac_low`` (A < 0 and s < 1 - eps_low), ``clip_frac_high`` (A > 0 and s > 1 + eps_high), ``clip_frac``
    (their sum: fraction of sequences with zero gradient from clipping), ``ratio_mean`` (mean s_i),
    ``log_ratio_abs_mean`` (mean |log s_i|).
    """
    mask = mask.to(logp.dtype)  # [B, T]
    old_logp = old_logp.detach()
    advantages = advantages.detach().to(logp.dtype)  # [B]
    log_ratio = torch.where(mask > 0, logp - old_logp, torch.zeros_like(logp))  # [B, T]; padding may hold inf
    seq_log_ratio = _masked_mean(log_ratio, mask)  # [B]  log s_i
    token_log_ratio = seq_log_ratio.detach()[:, None] + logp - logp.detach()  # [B, T]  log s_it
    token_log_ratio = torch.where(mask > 0, token_log_ratio, torch.zeros_like(token_log_ratio))
    ratio = torch.exp(token_log_ratio)  # [B, T]  value s_i on every valid token
    adv = advantages[:, None]  # [B, 1]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)  # [B, T]
    per_seq_loss = -_masked_mean(surrogate, mask)  # [B]

    with torch.no_grad():
        valid = (mask.sum(dim=-1) > 0).to(logp.dtype)  # [B]
        n_valid = valid.sum().clamp(min=1)
        s = torch.exp(seq_log_ratio)  # [B]
        low = ((s < 1 - eps_low) & (advantages < 0)).to(logp.dtype) * valid
        high = ((s > 1 + eps_high) & (advantages > 0)).to(logp.dtype) * valid
        metrics = {
            "clip_frac_low": low.sum() / n_valid,
            "clip_frac_high": high.sum() / n_valid,
            "clip_frac": (low + high).sum() / n_valid,
            "ratio_mean": (s * valid).sum() / n_valid,
            "log_ratio_abs_mean": (seq_log_ratio.abs() * valid).sum() / n_valid,
        }
    return per_seq_loss, metrics


def kl_k3(logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence masked-mean k3 KL(pi || pi_ref) estimator (Schulman 2020): [B, T] x3 -> [B].

    k3_t = exp(ref_logp_t - logp_t) - (ref_logp_t - logp_t) - 1 >= 0. The log-ratio is clamped to [-20, 20] to avoid
    overflow (deviation: the clamp zeroes the gradient beyond it). Optional: the recipe trains with KL 0.
    """
    mask = mask.to(logp.dtype)
    log_ratio = torch.where(mask > 0, ref_logp.detach() - logp, torch.zeros_like(logp)).clamp(-20.0, 20.0)  # [B, T]
    return _masked_mean(torch.exp(log_ratio) - log_ratio - 1, mask)  # [B]


def overlong_weights(finish_truncated: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Overlong filtering: BoolTensor [B] (generation hit the length limit) -> weights [B], 0 for truncated, else 1."""
    return (~finish_truncated.bool()).to(dtype)


def logprob_error_weights(
    logp: Tensor, rollout_logp: Tensor, mask: Tensor, max_error: float
) -> tuple[Tensor, Tensor]:
    """Mask sequences whose trainer log-probs drift from the rollout engine's.

    logp (trainer), rollout_logp (vLLM), mask [B, T] -> (weights [B]: 1 if error <= max_error else 0,
    error [B]: per-sequence masked mean |logp - rollout_logp|). Detached; an all-masked row has error 0.
    """
    mask = mask.to(logp.dtype)
    with torch.no_grad():
        diff = torch.where(mask > 0, (logp - rollout_logp).abs(), torch.zeros_like(logp))  # [B, T]
        error = _masked_mean(diff, mask)  # [B]
        weights = (error <= max_error).to(logp.dtype)  # [B]
    return weights, error
