"""The RL loop's rollouts -> the trainer's batch: group-normalised advantages, zero-variance groups, overlong
weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from omni_rl.config.schema import OmniRLConfig
from omni_rl.data.types import Prompt, ScoredRollout

if TYPE_CHECKING:
    from omni_rl.training.batch import TrainBatch


def build_train_batch(cfg: OmniRLConfig, prompts: Sequence[Prompt], scored: Sequence[Sequence[ScoredRollout]]
                      ) -> tuple["TrainBatch", dict[str, float]]:
    """Group-normalised advantages -> the trainer's batch. Zero-variance groups (all G rewards equal) carry no
    signal and are left out (counted) unless `algorithm.train_zero_variance_groups`; truncated rollouts get zero loss
    weight when overlong filtering is on (`overlong_weights`; they still count in their group's mean/std)."""
    import torch

    from omni_rl.algorithms.advantages import group_advantages
    from omni_rl.algorithms.gspo import overlong_weights
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    rewards = torch.tensor([[r.reward for r in g] for g in scored], dtype=torch.float64)  # [P, G]
    adv, zero_var = group_advantages(rewards, eps=cfg.algorithm.adv_eps)
    truncated = torch.tensor([[r.rollout.finish_reason == "length" for r in g] for g in scored])  # [P, G] bool
    weights = (overlong_weights(truncated, torch.float64) if cfg.algorithm.overlong_filter
               else torch.ones_like(rewards))  # [P, G]
    batch = TrainBatch(prompts=[], sequences=[])
    masked = 0.0
    for p_idx, (prompt, group) in enumerate(zip(prompts, scored)):
        if bool(zero_var[p_idx]) and not cfg.algorithm.train_zero_variance_groups:
            continue
        batch.prompts.append(TrainPrompt(prompt_ids=prompt.prompt_ids, mm_tensors=prompt.mm_tensors,
                                         uid=prompt.sample.id))
        for g_idx, r in enumerate(group):
            weight = float(weights[p_idx, g_idx])
            masked += 1.0 - weight
            batch.sequences.append(TrainSequence(
                prompt_index=len(batch.prompts) - 1, response_ids=r.rollout.token_ids,
                advantage=float(adv[p_idx, g_idx]), rollout_logp=r.rollout.logprobs, weight=weight,
                truncated=bool(truncated[p_idx, g_idx])))
    metrics = {"adv/zero_variance_groups": float(zero_var.sum()), "adv/groups": float(len(scored)),
               "adv/train_seqs": float(len(batch.sequences)), "adv/overlong_masked": masked}
    return batch, metrics
