"""MPO on (chosen, rejected) pairs: w_pref x DPO(sigmoid) + w_quality x BCO(delta) + w_sft x NLL(chosen)
(`omni_rl.algorithms.mpo`).

Config (`algorithm.mpo.*`, run.kind=preference): `preset` or beta / w_pref / w_quality / w_sft, `delta_momentum`.
Sequences come in pairs, chosen first; each carries `ref_logp`, its summed log-prob under the frozen initial policy
(scored once before training). delta = EMA (`delta_momentum`) of the global mean of beta x log-ratio over the chosen
and rejected of the optimizer step, over all ranks and micro-batches, updated once per step (`end_step`, through
`bco_delta_update`), starting at 0, saved in checkpoints (`state_dict`) and logged as `mpo/delta` (`metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from omni_rl.algorithms.mpo import bco_delta_update, bco_loss, dpo_sigmoid_loss, mpo_loss
from omni_rl.config.schema import MPOConfig
from omni_rl.training.objectives.base import AllReduceSum, MicroLoss, ScoreReference, per_sequence
from omni_rl.training.objectives.registry import register_objective

if TYPE_CHECKING:
    from omni_rl.config.schema import AlgorithmConfig
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.forward import ScoreOutput

TIE = 1e-6  # |implicit reward margin| at or below this counts as a tie (e.g. every pair before the first update)


@register_objective
@dataclass
class MPOObjective:
    beta: float
    w_pref: float
    w_quality: float
    w_sft: float
    delta_momentum: float = MPOConfig.delta_momentum
    delta: float = 0.0  # the BCO reward shift: state, not config

    name: ClassVar[str] = "mpo"
    run_kind: ClassVar[str] = "preference"
    unit: ClassVar[int] = 2
    uses_old_logp: ClassVar[bool] = False
    uses_reference: ClassVar[bool] = False  # the pairs carry their reference log-probs
    sum_keys: ClassVar[tuple[str, ...]] = ("pairs", "pref_sum", "quality_sum", "sft_sum", "correct_sum",
                                           "margin_sum", "chosen_reward_sum", "rejected_reward_sum")
    max_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, algorithm: AlgorithmConfig) -> MPOObjective:
        from omni_rl.config.schema import mpo_settings

        return cls(**mpo_settings(algorithm.mpo))

    def count(self, batch: TrainBatch) -> float:
        return float(sum(s.weight for s in batch.sequences[0::2]))

    def micro_loss(self, mb: TrainBatch, out: ScoreOutput, score_reference: ScoreReference | None) -> MicroLoss:
        seqs = mb.sequences
        if len(seqs) % 2:
            raise ValueError(f"MPO micro-batch of {len(seqs)} sequences: pairs are (chosen, rejected) sequences")
        if any(s.ref_logp is None for s in seqs):
            raise ValueError("MPO needs every sequence's ref_logp (score the pairs with the initial policy first)")
        seq_logp = out.logp.sum(-1)  # [2P] summed response log-probs (out.logp is masked)
        pc, pr = seq_logp[0::2], seq_logp[1::2]  # [P]
        ref = per_sequence(mb, "ref_logp", seq_logp)  # [2P]
        rc, rr = ref[0::2], ref[1::2]  # [P]
        chosen_nll = -pc / out.mask[0::2].sum(-1).clamp(min=1)  # [P] token-mean NLL of the chosen response
        per_pair, m = mpo_loss(pc, pr, rc, rr, beta=self.beta, delta=self.delta, w_pref=self.w_pref,
                               w_quality=self.w_quality, w_sft=self.w_sft, chosen_nll=chosen_nll)
        weights = per_sequence(mb, "weight", seq_logp)[0::2]  # [P] the chosen sequence's weight is the pair's
        with torch.no_grad():
            pref = dpo_sigmoid_loss(pc, pr, rc, rr, beta=self.beta)
            quality = bco_loss(pc, pr, rc, rr, beta=self.beta, delta=self.delta)
            chosen_r, rejected_r = m["chosen_rewards"], m["rejected_rewards"]  # [P] beta x log-ratio

            def wsum(x: Tensor) -> float:
                return float((x * weights).sum())

            sums = {"pairs": float(weights.sum()), "pref_sum": wsum(pref), "quality_sum": wsum(quality),
                    "sft_sum": wsum(chosen_nll.detach()), "correct_sum": wsum(_preferred(chosen_r - rejected_r)),
                    "margin_sum": wsum(chosen_r - rejected_r), "chosen_reward_sum": wsum(chosen_r),
                    "rejected_reward_sum": wsum(rejected_r)}
        return MicroLoss(per_pair, weights, sums, {})

    def end_step(self, sums: dict[str, float], all_reduce_sum: AllReduceSum) -> None:
        """delta <- bco_delta_update(delta, the step's chosen rewards, its rejected rewards). The sums are this rank's
        over its micro-batches; one all-reduce makes them global, so every rank holds the same delta. Every pair has
        one chosen and one rejected reward, so the mean over both equals the mean of (global mean chosen reward,
        global mean rejected reward): those two numbers go in."""
        chosen, rejected, pairs = all_reduce_sum([sums["chosen_reward_sum"], sums["rejected_reward_sum"],
                                                  sums["pairs"]])
        if pairs > 0:
            means = torch.tensor([chosen / pairs, rejected / pairs], dtype=torch.float64)
            self.delta = float(bco_delta_update(self.delta, means[:1], means[1:], momentum=self.delta_momentum))

    def reduce(self, tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
        n = max(tot["pairs"], 1.0)
        return {"train/num_pairs": tot["pairs"], "mpo/pref_loss": tot["pref_sum"] / n,
                "mpo/quality_loss": tot["quality_sum"] / n, "mpo/sft_loss": tot["sft_sum"] / n,
                "mpo/accuracy": tot["correct_sum"] / n, "mpo/reward_margin": tot["margin_sum"] / n,
                "mpo/chosen_reward": tot["chosen_reward_sum"] / n,
                "mpo/rejected_reward": tot["rejected_reward_sum"] / n}

    def metrics(self) -> dict[str, float]:
        return {"mpo/delta": self.delta}

    def state_dict(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta = float(state.get("delta", 0.0))


def _preferred(margin: Tensor) -> Tensor:
    """Preference accuracy per pair: 1 when the chosen response's implicit reward is higher, 0 when lower, 0.5 for a
    tie (so an untrained policy, equal to its reference, scores 0.5 rather than 0)."""
    return torch.where(margin.abs() <= TIE, 0.5, (margin > 0).to(margin.dtype)).to(margin.dtype)
