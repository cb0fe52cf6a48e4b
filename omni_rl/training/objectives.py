"""Training objectives: what a trainer rank computes from one micro-batch's scored sequences.

The trainer worker (`omni_rl.training.worker`) owns everything objective-independent: micro-batching, the forward
(`score`, encoder once per unique media), the global normalisation, backward, the gradient all-reduce, clipping and
the optimizer. An objective says

* `unit`: how many consecutive sequences form one loss unit (1 for GSPO: a rollout; 2 for MPO: chosen then
  rejected of one pair); batches are split into ranks, mini-batches and micro-batches on unit boundaries;
* `count(batch)`: the batch's weighted unit count (the step's normaliser is this, summed over ranks, computed once);
* `micro_loss(...)`: per-unit losses [U] and weights [U] of one micro-batch (through the pure functions of
  `omni_rl.algorithms`), plus metric sums and maxima;
* `sum_keys` / `max_keys` / `reduce(...)`: how its metrics add up over micro-batches and ranks;
* `end_step(...)`: state updated once per optimizer step from global values (MPO's delta), and `state_dict` /
  `load_state_dict` for checkpoints.

Every unit's loss is normalised by the same global count (`omni_rl.algorithms.normalization.normalized_sum`), so
1 rank x 1 micro-batch == R ranks x M micro-batches for both objectives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from omni_rl.algorithms.gspo import gspo_loss, kl_k3, logprob_error_weights
from omni_rl.algorithms.mpo import bco_loss, dpo_sigmoid_loss, mpo_loss
from omni_rl.config.schema import MPO_PRESETS  # noqa: F401 -- the presets, next to the objective

if TYPE_CHECKING:
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.forward import ScoreOutput
    from omni_rl.training.worker import TrainerWorker

COMMON_SUM_KEYS = ("loss", "num_seqs", "num_weighted", "tokens", "media_encoded", "encoder_forwards")
COMMON_MAX_KEYS = ("forward_s",)


@dataclass
class MicroLoss:
    per_unit: Tensor  # [U] loss of each unit (with grad)
    weights: Tensor  # [U] loss weight / normalisation count of each unit (0 = left out)
    sums: dict[str, float] = field(default_factory=dict)
    maxes: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------------ GSPO
class GSPOObjective:
    """GSPO on rollouts (`omni_rl.algorithms.gspo`), with the train-vs-rollout log-prob mask and the optional k3 KL
    to a frozen reference."""

    name = "gspo"
    unit = 1
    sum_keys = ("num_valid", "clip_low", "clip_high", "ratio_sum", "log_ratio_abs_sum", "logprob_abs_diff_sum",
                "logprob_tokens", "logprob_masked", "kl_sum")
    max_keys = ("logprob_seq_error_max", "logprob_token_max")

    def __init__(self, *, eps_low: float = 0.2, eps_high: float = 0.28, max_logprob_error: float | None = None,
                 kl_beta: float = 0.0):
        self.eps_low, self.eps_high = eps_low, eps_high
        self.max_logprob_error = max_logprob_error
        self.kl_beta = kl_beta

    def count(self, batch: TrainBatch) -> float:
        return batch.num_weighted

    def micro_loss(self, worker: TrainerWorker, mb: TrainBatch, out: ScoreOutput, *,
                   logprob_mask: bool = True) -> MicroLoss:
        from omni_rl.training.forward import score

        sums = dict.fromkeys(self.sum_keys, 0.0)
        maxes = dict.fromkeys(self.max_keys, 0.0)
        logp, mask = out.logp, out.mask  # [B, R]
        old_logp = _old_logp(mb, logp)  # [B, R]
        weights = torch.tensor([s.weight for s in mb.sequences], dtype=logp.dtype, device=logp.device)  # [B]
        rollout = _padded([s.rollout_logp for s in mb.sequences], logp) if logprob_mask else None
        if rollout is not None:
            limit = self.max_logprob_error if self.max_logprob_error is not None else float("inf")
            keep, error = logprob_error_weights(logp.detach(), rollout, mask, limit)
            if self.max_logprob_error is not None:
                sums["logprob_masked"] += float(((keep == 0) & (weights > 0)).sum())
                weights = weights * keep
            sums["logprob_abs_diff_sum"] += float(((logp.detach() - rollout).abs() * mask).sum())
            sums["logprob_tokens"] += float(mask.sum())
            maxes["logprob_seq_error_max"] = float(error.max())
            maxes["logprob_token_max"] = float(((logp.detach() - rollout).abs() * mask).max())
        advantages = torch.tensor([s.advantage for s in mb.sequences], dtype=logp.dtype, device=logp.device)
        per_seq, m = gspo_loss(logp, old_logp, advantages, mask, eps_low=self.eps_low, eps_high=self.eps_high)
        if worker.ref_adapter is not None:
            with torch.no_grad():
                ref_logp = score(worker.ref_adapter, mb, encoder_once=worker.encoder_once,
                                 temperature=worker.temperature, prompt_once=worker.prompt_once,
                                 packing=worker.packing).logp
            kl = kl_k3(logp, ref_logp, mask)  # [B]
            per_seq = per_seq + self.kl_beta * kl
            sums["kl_sum"] += float((kl.detach() * weights).sum())
        n_valid = float((mask.sum(-1) > 0).sum())
        sums["num_valid"] += n_valid
        sums["clip_low"] += float(m["clip_frac_low"]) * n_valid
        sums["clip_high"] += float(m["clip_frac_high"]) * n_valid
        sums["ratio_sum"] += float(m["ratio_mean"]) * n_valid
        sums["log_ratio_abs_sum"] += float(m["log_ratio_abs_mean"]) * n_valid
        return MicroLoss(per_seq, weights, sums, maxes)

    def end_step(self, worker: TrainerWorker, sums: dict[str, float]) -> None:
        pass

    def reduce(self, tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
        n_valid = max(tot["num_valid"], 1.0)
        return {
            "train/clip_frac_low": tot["clip_low"] / n_valid,
            "train/clip_frac_high": tot["clip_high"] / n_valid,
            "train/clip_frac": (tot["clip_low"] + tot["clip_high"]) / n_valid,
            "train/ratio_mean": tot["ratio_sum"] / n_valid,
            "train/log_ratio_abs_mean": tot["log_ratio_abs_sum"] / n_valid,
            "train/logprob_abs_diff_mean": tot["logprob_abs_diff_sum"] / max(tot["logprob_tokens"], 1.0),
            "train/logprob_seq_error_max": max(m["logprob_seq_error_max"] for m in per_rank),
            "logprob/mismatch_max": max(m["logprob_token_max"] for m in per_rank),
            "train/logprob_masked_seqs": tot["logprob_masked"],
            "train/kl_ref": tot["kl_sum"] / max(tot["num_weighted"], 1.0),
        }

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# ------------------------------------------------------------------------------------------------------------- MPO
class MPOObjective:
    """MPO on (chosen, rejected) pairs: w_pref x DPO(sigmoid) + w_quality x BCO(delta) + w_sft x NLL(chosen)
    (`omni_rl.algorithms.mpo`). Sequences come in pairs, chosen first; each carries `ref_logp`, its summed log-prob
    under the frozen initial policy (scored once before training). delta = EMA (`delta_momentum`) of the global mean
    of beta x log-ratio over the chosen and rejected of the optimizer step, over all ranks and micro-batches, updated
    once per step (`end_step`), starting at 0, saved in checkpoints."""

    name = "mpo"
    unit = 2
    sum_keys = ("pairs", "pref_sum", "quality_sum", "sft_sum", "correct_sum", "margin_sum", "chosen_reward_sum",
                "rejected_reward_sum")
    max_keys = ()

    def __init__(self, *, beta: float, w_pref: float, w_quality: float, w_sft: float, delta_momentum: float = 0.99):
        self.beta, self.w_pref, self.w_quality, self.w_sft = beta, w_pref, w_quality, w_sft
        self.delta_momentum = delta_momentum
        self.delta = 0.0

    def count(self, batch: TrainBatch) -> float:
        return float(sum(s.weight for s in batch.sequences[0::2]))

    def micro_loss(self, worker: TrainerWorker, mb: TrainBatch, out: ScoreOutput, *,
                   logprob_mask: bool = True) -> MicroLoss:
        seqs = mb.sequences
        if len(seqs) % 2:
            raise ValueError(f"MPO micro-batch of {len(seqs)} sequences: pairs are (chosen, rejected) sequences")
        if any(s.ref_logp is None for s in seqs):
            raise ValueError("MPO needs every sequence's ref_logp (score the pairs with the initial policy first)")
        seq_logp = out.logp.sum(-1)  # [2P] summed response log-probs (out.logp is masked)
        pc, pr = seq_logp[0::2], seq_logp[1::2]  # [P]
        ref = torch.tensor([float(s.ref_logp) for s in seqs], dtype=seq_logp.dtype, device=seq_logp.device)
        rc, rr = ref[0::2], ref[1::2]  # [P]
        chosen_nll = -pc / out.mask[0::2].sum(-1).clamp(min=1)  # [P] token-mean NLL of the chosen response
        per_pair, m = mpo_loss(pc, pr, rc, rr, beta=self.beta, delta=self.delta, w_pref=self.w_pref,
                               w_quality=self.w_quality, w_sft=self.w_sft, chosen_nll=chosen_nll)
        weights = torch.tensor([s.weight for s in seqs[0::2]], dtype=seq_logp.dtype, device=seq_logp.device)
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

    def end_step(self, worker: TrainerWorker, sums: dict[str, float]) -> None:
        """delta <- m * delta + (1 - m) * (global mean of the step's chosen and rejected rewards). The sums are this
        rank's over its micro-batches; one all-reduce makes them global, so every rank holds the same delta."""
        totals = [sums["chosen_reward_sum"] + sums["rejected_reward_sum"], 2.0 * sums["pairs"]]
        if worker.world_size > 1:
            from omni_rl.training.dist import all_reduce_sum

            totals = all_reduce_sum(totals, worker.device)
        if totals[1] > 0:
            m = self.delta_momentum
            self.delta = m * self.delta + (1.0 - m) * (totals[0] / totals[1])

    def reduce(self, tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
        n = max(tot["pairs"], 1.0)
        return {"train/num_pairs": tot["pairs"], "mpo/pref_loss": tot["pref_sum"] / n,
                "mpo/quality_loss": tot["quality_sum"] / n, "mpo/sft_loss": tot["sft_sum"] / n,
                "mpo/accuracy": tot["correct_sum"] / n, "mpo/reward_margin": tot["margin_sum"] / n,
                "mpo/chosen_reward": tot["chosen_reward_sum"] / n,
                "mpo/rejected_reward": tot["rejected_reward_sum"] / n, "mpo/delta": per_rank[0]["delta"]}

    def state_dict(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta = float(state.get("delta", 0.0))


OBJECTIVES = {"gspo": GSPOObjective, "mpo": MPOObjective}
TIE = 1e-6  # |implicit reward margin| at or below this counts as a tie (e.g. every pair before the first update)


def _preferred(margin: Tensor) -> Tensor:
    """Preference accuracy per pair: 1 when the chosen response's implicit reward is higher, 0 when lower, 0.5 for a
    tie (so an untrained policy, equal to its reference, scores 0.5 rather than 0)."""
    return torch.where(margin.abs() <= TIE, 0.5, (margin > 0).to(margin.dtype)).to(margin.dtype)


def make_objective(name: str, **kwargs: Any) -> GSPOObjective | MPOObjective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](**kwargs)


# ------------------------------------------------------------------------------------------------------ helpers
def _padded(rows: Sequence[Sequence[float] | None], like: Tensor) -> Tensor | None:
    """[B, R] tensor like `like` from per-sequence lists (zeros past each list); None if any row is None."""
    if any(r is None for r in rows):
        return None
    out = torch.zeros_like(like)
    for i, r in enumerate(rows):
        if len(r) > like.shape[1]:
            raise ValueError(f"sequence {i}: {len(r)} logprobs for {like.shape[1]} response tokens")
        out[i, :len(r)] = torch.tensor(list(r), dtype=like.dtype)
    return out


def _old_logp(mb: TrainBatch, logp: Tensor) -> Tensor:
    """The behaviour logp [B, R]: each sequence's `old_logp`, or this forward's detached logp (on-policy)."""
    out = logp.detach().clone()
    for i, s in enumerate(mb.sequences):
        if s.old_logp is not None:
            if len(s.old_logp) != len(s.response_ids):
                raise ValueError(f"old_logp has {len(s.old_logp)} entries for {len(s.response_ids)} tokens")
            out[i, :len(s.old_logp)] = torch.tensor(s.old_logp, dtype=logp.dtype)
    return out
