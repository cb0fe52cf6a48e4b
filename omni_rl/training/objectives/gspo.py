"""GSPO on rollouts (`omni_rl.algorithms.gspo.gspo_loss`), with the optional k3 KL to a frozen reference.

Config (`algorithm.*`, run.kind=rl): `clip_preset` (a name of `omni_rl.algorithms.clip.CLIP_PRESETS`; null:
`eps_low` / `eps_high`), `kl_beta` (0: no reference model). Unit: one sequence; count: the sum of sequence weights,
so the step loss is the weighted mean over the step's sequences of each sequence's token-mean loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from omni_rl.algorithms.clip import CLIP_PRESETS
from omni_rl.algorithms.gspo import gspo_loss, kl_k3
from omni_rl.config.schema import AlgorithmConfig
from omni_rl.training.objectives.base import (MicroLoss, RolloutRatioObjective, ScoreReference, clip_sums,
                                              old_logp, per_sequence)
from omni_rl.training.objectives.registry import register_objective

if TYPE_CHECKING:
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.forward import ScoreOutput


@register_objective
@dataclass
class GSPOObjective(RolloutRatioObjective):
    # the schema's defaults: the objective a worker builds with no arguments is the default config's
    eps_low: float = AlgorithmConfig.eps_low
    eps_high: float = AlgorithmConfig.eps_high
    kl_beta: float = AlgorithmConfig.kl_beta

    name: ClassVar[str] = "gspo"

    @classmethod
    def from_config(cls, algorithm: AlgorithmConfig) -> GSPOObjective:
        a = algorithm
        eps_low, eps_high = CLIP_PRESETS[a.clip_preset] if a.clip_preset else (a.eps_low, a.eps_high)
        return cls(eps_low=eps_low, eps_high=eps_high, kl_beta=a.kl_beta)

    def count(self, batch: TrainBatch) -> float:
        return batch.num_weighted

    def micro_loss(self, mb: TrainBatch, out: ScoreOutput, score_reference: ScoreReference | None) -> MicroLoss:
        logp, mask = out.logp, out.mask  # [B, R]
        weights = per_sequence(mb, "weight", logp)  # [B]
        per_seq, m = gspo_loss(logp, old_logp(mb, logp), per_sequence(mb, "advantage", logp), mask,
                               eps_low=self.eps_low, eps_high=self.eps_high)
        sums = clip_sums(m, float((mask.sum(-1) > 0).sum()))
        sums["kl_sum"] = 0.0
        if score_reference is not None:
            kl = kl_k3(logp, score_reference(), mask)  # [B]
            per_seq = per_seq + self.kl_beta * kl
            sums["kl_sum"] = float((kl.detach() * weights).sum())
        return MicroLoss(per_seq, weights, sums, {})
