"""GRPO on rollouts with DAPO's token-level loss (`omni_rl.algorithms.grpo.grpo_loss`), with the optional k3 KL to a
frozen reference (as GSPO).

Config (`algorithm.name=grpo`, run.kind=rl): `algorithm.grpo.eps_low` / `eps_high` (clip-higher, DAPO's
`omni_rl.algorithms.clip.DAPO_CLIP`), `algorithm.kl_beta` (0: no reference model). Inputs are GSPO's: the
group-normalised sequence advantage, broadcast to the tokens, and old / rollout log-probs. Unit: one sequence; count:
the step's weighted response-token count (sum_i w_i n_i), so the step loss is the token mean over every response
token of the step (DAPO), the same for any split into ranks and micro-batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from omni_rl.algorithms.grpo import grpo_loss
from omni_rl.algorithms.gspo import kl_k3
from omni_rl.config.schema import AlgorithmConfig, GRPOConfig
from omni_rl.training.objectives.base import (MicroLoss, RolloutRatioObjective, ScoreReference, clip_sums,
                                              old_logp, per_sequence)
from omni_rl.training.objectives.registry import register_objective

if TYPE_CHECKING:
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.forward import ScoreOutput


@register_objective
@dataclass
class GRPOObjective(RolloutRatioObjective):
    eps_low: float = GRPOConfig.eps_low
    eps_high: float = GRPOConfig.eps_high
    kl_beta: float = AlgorithmConfig.kl_beta

    name: ClassVar[str] = "grpo"

    @classmethod
    def from_config(cls, algorithm: AlgorithmConfig) -> GRPOObjective:
        g = algorithm.grpo
        return cls(eps_low=g.eps_low, eps_high=g.eps_high, kl_beta=algorithm.kl_beta)

    def count(self, batch: TrainBatch) -> float:
        return float(sum(s.weight * len(s.response_ids) for s in batch.sequences))

    def micro_loss(self, mb: TrainBatch, out: ScoreOutput, score_reference: ScoreReference | None) -> MicroLoss:
        logp, mask = out.logp, out.mask  # [B, R]
        weights = per_sequence(mb, "weight", logp)  # [B]
        per_seq, m = grpo_loss(logp, old_logp(mb, logp), per_sequence(mb, "advantage", logp), mask,
                               eps_low=self.eps_low, eps_high=self.eps_high)  # [B] token-loss sums
        sums = clip_sums(m, float(mask.sum()))  # clip fractions and ratios per token
        sums["kl_sum"] = 0.0
        if score_reference is not None:
            kl = kl_k3(logp, score_reference(), mask)  # [B] token-mean k3
            per_seq = per_seq + self.kl_beta * kl * mask.sum(-1)  # summed over tokens, like the loss
            sums["kl_sum"] = float((kl.detach() * weights).sum())
        return MicroLoss(per_seq, weights, sums, {})
