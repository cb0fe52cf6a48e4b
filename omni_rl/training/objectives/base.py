"""The `Objective` protocol and the pieces objectives share: `MicroLoss`, the common metric keys, the per-sequence
tensors of a micro-batch, and the train-vs-rollout log-prob mismatch (measured once, by the worker).

The trainer worker (`omni_rl.training.worker`) owns everything objective-independent: micro-batching, the forward
(`score`, encoder once per unique media), the train-vs-rollout mismatch and its `max_logprob_error` mask, the
global normalisation, backward, the gradient all-reduce, clipping and the optimizer. An objective says

* `unit`: how many consecutive sequences form one loss unit (1 for a rollout; 2 for a (chosen, rejected) pair);
  batches are split into ranks, mini-batches and micro-batches on unit boundaries;
* `count(batch)`: the batch's weighted count (the step's normaliser is this, summed over ranks, computed once);
* `micro_loss(mb, out, score_reference)`: per-unit losses [U] and weights [U] of one micro-batch (through the pure
  functions of `omni_rl.algorithms`), plus metric sums and maxima;
* `sum_keys` / `max_keys` / `reduce(...)`: how its metrics add up over micro-batches and ranks;
* `end_step(sums, all_reduce_sum)`: state updated once per optimizer step from global values; `metrics()` reports
  that state, `state_dict()` / `load_state_dict()` save it in checkpoints (JSON values).

Every unit's loss is normalised by the same global count (`omni_rl.algorithms.normalization.normalized_sum`), so
1 rank x 1 micro-batch == R ranks x M micro-batches for every objective that follows the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from omni_rl.algorithms.gspo import logprob_error_weights

if TYPE_CHECKING:
    from omni_rl.config.schema import AlgorithmConfig
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.forward import ScoreOutput

# Sums / maxima every train step reports, whatever the objective (the worker fills them).
MISMATCH_SUM_KEYS = ("logprob_abs_diff_sum", "logprob_tokens", "logprob_masked")
MISMATCH_MAX_KEYS = ("logprob_seq_error_max", "logprob_token_max")
MISMATCH_KEYS = MISMATCH_SUM_KEYS + MISMATCH_MAX_KEYS
COMMON_SUM_KEYS = ("loss", "num_seqs", "num_weighted", "tokens", "media_encoded", "encoder_forwards",
                   *MISMATCH_SUM_KEYS)
COMMON_MAX_KEYS = ("forward_s", *MISMATCH_MAX_KEYS)
ScoreReference = Callable[[], Tensor]  # -> [B, R] logp of the micro-batch under the frozen reference (no grad)
AllReduceSum = Callable[[Sequence[float]], list[float]]  # SUM over the trainer ranks (identity on one rank)


@dataclass
class MicroLoss:
    per_unit: Tensor  # [U] loss of each unit (with grad)
    weights: Tensor  # [U] loss weight of each unit (0 = left out)
    sums: dict[str, float] = field(default_factory=dict)
    maxes: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Objective(Protocol):
    """What the trainer worker and group call; see the module docstring. Implementations are plain dataclasses of
    config values (they travel to the Ray trainer actors by pickling) registered with `register_objective`."""

    name: ClassVar[str]  # the `algorithm.name` that selects it
    run_kind: ClassVar[str]  # the `run.kind` whose controller feeds it ("rl": rollouts, "preference": pairs)
    unit: ClassVar[int]
    uses_old_logp: ClassVar[bool]  # `train` with several mini-batches fills missing `old_logp` before any update
    sum_keys: ClassVar[tuple[str, ...]]
    max_keys: ClassVar[tuple[str, ...]]

    @classmethod
    def from_config(cls, algorithm: AlgorithmConfig) -> Objective: ...

    @property
    def uses_reference(self) -> bool:
        """True: the worker loads a frozen copy of the initial policy and hands `micro_loss` a `score_reference`."""
        ...

    def count(self, batch: TrainBatch) -> float: ...

    def micro_loss(self, mb: TrainBatch, out: ScoreOutput, score_reference: ScoreReference | None) -> MicroLoss: ...

    def end_step(self, sums: dict[str, float], all_reduce_sum: AllReduceSum) -> None: ...

    def reduce(self, tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stateless:
    """The state hooks of an objective without state across optimizer steps."""

    def end_step(self, sums: dict[str, float], all_reduce_sum: AllReduceSum) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# ------------------------------------------------------------------------------------- per-sequence tensors
def per_sequence(mb: TrainBatch, attr: str, like: Tensor) -> Tensor:
    """[B] tensor of each sequence's `attr` (`weight`, `advantage`), in `like`'s dtype and device."""
    return torch.tensor([float(getattr(s, attr)) for s in mb.sequences], dtype=like.dtype, device=like.device)


def padded(rows: Sequence[Sequence[float] | None], like: Tensor) -> Tensor | None:
    """[B, R] tensor like `like` from per-sequence lists (zeros past each list); None if any row is None."""
    if any(r is None for r in rows):
        return None
    out = torch.zeros_like(like)
    for i, r in enumerate(rows):
        if len(r) > like.shape[1]:
            raise ValueError(f"sequence {i}: {len(r)} logprobs for {like.shape[1]} response tokens")
        out[i, :len(r)] = torch.tensor(list(r), dtype=like.dtype)
    return out


def old_logp(mb: TrainBatch, logp: Tensor) -> Tensor:
    """The behaviour logp [B, R]: each sequence's `old_logp`, or this forward's detached logp (on-policy)."""
    out = logp.detach().clone()
    for i, s in enumerate(mb.sequences):
        if s.old_logp is not None:
            if len(s.old_logp) != len(s.response_ids):
                raise ValueError(f"old_logp has {len(s.old_logp)} entries for {len(s.response_ids)} tokens")
            out[i, :len(s.old_logp)] = torch.tensor(s.old_logp, dtype=logp.dtype)
    return out


# ------------------------------------------------------------------------------------ log-prob mismatch
def logprob_mismatch(mb: TrainBatch, logp: Tensor, mask: Tensor, max_error: float | None
                     ) -> tuple[list[float] | None, dict[str, float]]:
    """Trainer (`logp` [B, R], detached) vs rollout log-probs of one micro-batch -> (the sequences' weights with the
    `max_error` mask applied, or None when the micro-batch carries no rollout log-probs or nothing is masked; sums
    and maxima under the COMMON keys). A sequence whose mean |logp - rollout_logp| exceeds `max_error` gets weight 0
    (`omni_rl.algorithms.gspo.logprob_error_weights`); a weight-0 sequence is not counted as masked."""
    rollout = padded([s.rollout_logp for s in mb.sequences], logp)
    if rollout is None:
        return None, {}
    keep, error = logprob_error_weights(logp, rollout, mask, max_error if max_error is not None else float("inf"))
    diff = (logp - rollout).abs() * mask  # [B, R]
    weights = [s.weight for s in mb.sequences]
    masked = [i for i, w in enumerate(weights) if keep[i] == 0 and w > 0]
    stats = {"logprob_abs_diff_sum": float(diff.sum()), "logprob_tokens": float(mask.sum()),
             "logprob_masked": float(len(masked)), "logprob_seq_error_max": float(error.max()),
             "logprob_token_max": float(diff.max())}
    if not masked:
        return None, stats
    return [0.0 if i in masked else w for i, w in enumerate(weights)], stats


def reduce_mismatch(tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """The step's mismatch metrics from the COMMON sums and maxima."""
    return {"train/logprob_abs_diff_mean": tot["logprob_abs_diff_sum"] / max(tot["logprob_tokens"], 1.0),
            "train/logprob_seq_error_max": max(m["logprob_seq_error_max"] for m in per_rank),
            "logprob/mismatch_max": max(m["logprob_token_max"] for m in per_rank),
            "train/logprob_masked_seqs": tot["logprob_masked"]}


# ------------------------------------------------------------------------------- ratio objectives on rollouts
CLIP_SUM_KEYS = ("num_valid", "clip_low", "clip_high", "ratio_sum", "log_ratio_abs_sum", "kl_sum")


class RolloutRatioObjective(Stateless):
    """What the clipped-ratio objectives on rollouts share (GSPO, GRPO): one sequence per unit, old log-probs, a
    frozen reference when `kl_beta` != 0, the clip metrics. Subclasses are dataclasses with a `kl_beta` field."""

    kl_beta: float
    run_kind: ClassVar[str] = "rl"
    unit: ClassVar[int] = 1
    uses_old_logp: ClassVar[bool] = True
    sum_keys: ClassVar[tuple[str, ...]] = CLIP_SUM_KEYS
    max_keys: ClassVar[tuple[str, ...]] = ()

    @property
    def uses_reference(self) -> bool:
        return self.kl_beta != 0

    def reduce(self, tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
        return clip_reduce(tot)



def clip_sums(m: dict[str, Tensor], n_valid: float) -> dict[str, float]:
    """The clip-metric means of a ratio loss (`gspo_loss`, `grpo_loss`) over `n_valid` items, as sums."""
    return {"num_valid": n_valid, "clip_low": float(m["clip_frac_low"]) * n_valid,
            "clip_high": float(m["clip_frac_high"]) * n_valid, "ratio_sum": float(m["ratio_mean"]) * n_valid,
            "log_ratio_abs_sum": float(m["log_ratio_abs_mean"]) * n_valid}


def clip_reduce(tot: dict[str, float]) -> dict[str, float]:
    n_valid = max(tot["num_valid"], 1.0)
    return {"train/clip_frac_low": tot["clip_low"] / n_valid, "train/clip_frac_high": tot["clip_high"] / n_valid,
            "train/clip_frac": (tot["clip_low"] + tot["clip_high"]) / n_valid,
            "train/ratio_mean": tot["ratio_sum"] / n_valid,
            "train/log_ratio_abs_mean": tot["log_ratio_abs_sum"] / n_valid,
            "train/kl_ref": tot["kl_sum"] / max(tot["num_weighted"], 1.0)}
