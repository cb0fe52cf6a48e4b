"""MPO: Mixed Preference Optimization (Wang et al., 2024, arXiv:2411.10442, InternVL2-MPO).

Inputs are summed sequence log-probs [B] of the chosen (c) / rejected (r) response under the policy (p) and the frozen
reference (ref); log-ratios lr_c = pc - rc, lr_r = pr - rr; implicit rewards R_c = beta * lr_c, R_r = beta * lr_r.

    L_pref    = -log sig(beta * (lr_c - lr_r))                          # DPO, sigmoid (Rafailov et al., 2023)
    L_quality = -log sig(beta * lr_c - delta) - log sig(-(beta * lr_r - delta))   # BCO (Jung et al., 2024)
    L_sft     = token-mean NLL of the chosen response                     # generation term
    L_i       = w_pref * L_pref + w_quality * L_quality + w_sft * L_sft   # plain linear combination

delta (BCO reward shift) is an explicit input owned by the trainer: ``bco_delta_update`` once per optimizer step with
the GLOBAL (all-gathered over ranks and micro-batches) rewards, delta_0 = 0, saved in checkpoints.

Deviations / choices:
- No renormalisation by the weight sum (w_pref + w_quality + w_sft); paper defaults (0.8, 0.2, 1.0), public Nano Omni
  config (0.8, 0.2, 0.0) with beta 0.05.
- delta is the EMA (momentum 0.99) of the mean reward over chosen and rejected, not BCO's plain running mean; it is
  updated once per optimizer step from global rewards (not per micro-batch per rank), and never dropped (TRL >= 0.29
  silently did).
- All terms use ``logsigmoid`` (no log(sigmoid) underflow). ``mpo_loss`` returns per-pair losses [B]; the trainer
  normalises with ``omni_rl.algorithms.normalization.normalized_sum`` by the global pair count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dpo_sigmoid_loss(pc: Tensor, pr: Tensor, rc: Tensor, rr: Tensor, *, beta: float) -> Tensor:
    """-log sig(beta * ((pc - rc) - (pr - rr))); all [B] -> [B]."""
    return -F.logsigmoid(beta * ((pc - rc.detach()) - (pr - rr.detach())))


def bco_loss(pc: Tensor, pr: Tensor, rc: Tensor, rr: Tensor, *, beta: float, delta: float | Tensor) -> Tensor:
    """-log sig(beta * lr_c - delta) - log sig(-(beta * lr_r - delta)); all [B] -> [B]. delta is a constant."""
    if isinstance(delta, Tensor):
        delta = delta.detach()
    chosen_reward = beta * (pc - rc.detach())  # [B]
    rejected_reward = beta * (pr - rr.detach())  # [B]
    return -F.logsigmoid(chosen_reward - delta) - F.logsigmoid(-(rejected_reward - delta))


def sft_loss(chosen_nll: Tensor) -> Tensor:
    """Generation term: the per-pair token-mean NLL of the chosen response [B], returned as is (named for clarity)."""
    return chosen_nll


def mpo_loss(
    policy_chosen_logp: Tensor,
    policy_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    *,
    beta: float,
    delta: float | Tensor,
    w_pref: float,
    w_quality: float,
    w_sft: float,
    chosen_nll: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Summed sequence log-probs [B] x4 (+ chosen_nll [B]) -> (per_pair_loss [B], metrics).

    Metrics (detached): 0-dim means ``pref_loss``, ``quality_loss``, ``sft_loss`` (when chosen_nll is given),
    ``reward_margin``, ``reward_accuracy``; and per-pair [B] ``chosen_rewards`` / ``rejected_rewards``
    (beta * log-ratio) for the trainer to all-gather into ``bco_delta_update``.
    Raises ValueError if w_sft > 0 and chosen_nll is None.
    """
    if w_sft > 0 and chosen_nll is None:
        raise ValueError("mpo_loss: w_sft > 0 needs chosen_nll (per-pair token-mean NLL of the chosen response)")
    pc, pr, rc, rr = policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, ref_rejected_logp
    pref = dpo_sigmoid_loss(pc, pr, rc, rr, beta=beta)  # [B]
    quality = bco_loss(pc, pr, rc, rr, beta=beta, delta=delta)  # [B]
    per_pair_loss = w_pref * pref + w_quality * quality  # [B]
    metrics: dict[str, Tensor] = {}
    if chosen_nll is not None:
        sft = sft_loss(chosen_nll)  # [B]
        per_pair_loss = per_pair_loss + w_sft * sft
        metrics["sft_loss"] = sft.detach().mean()
    with torch.no_grad():
        chosen_rewards = beta * (pc - rc)  # [B]
        rejected_rewards = beta * (pr - rr)  # [B]
        metrics.update(
            pref_loss=pref.mean(),
            quality_loss=quality.mean(),
            reward_margin=(chosen_rewards - rejected_rewards).mean(),
            reward_accuracy=(chosen_rewards > rejected_rewards).to(pc.dtype).mean(),
            chosen_rewards=chosen_rewards,
            rejected_rewards=rejected_rewards,
        )
    return per_pair_loss, metrics


def bco_delta_update(
    delta: float | Tensor, chosen_rewards: Tensor, rejected_rewards: Tensor, *, momentum: float = 0.99
) -> Tensor:
    """delta' = momentum * delta + (1 - momentum) * mean(cat(chosen_rewards, rejected_rewards)) -> 0-dim tensor.

    rewards = beta * log-ratio vs reference. Call ONCE per optimizer step, after it, with the GLOBAL rewards of that
    step (all-gathered across ranks and micro-batches), so every rank holds the same delta; checkpoint it.
    """
    rewards = torch.cat([chosen_rewards.detach().reshape(-1), rejected_rewards.detach().reshape(-1)])  # [2N]
    delta_t = torch.as_tensor(delta, dtype=rewards.dtype, device=rewards.device).detach()
    return momentum * delta_t + (1 - momentum) * rewards.mean()
