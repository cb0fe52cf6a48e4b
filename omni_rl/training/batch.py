"""The trainer's batch: unique prompts stored ONCE, sequences (rollouts) that reference them by index.

A GSPO step trains on B prompts x G rollouts. The prompt's token ids and its processed media (`mm_tensors`:
pixel_values, image_grid_thw, input_features, ...) live once in `TrainBatch.prompts`; each `TrainSequence` points at
its prompt with `prompt_index`. Nothing is copied G times: not in memory, not through Ray's object store (a shard
pickles each referenced prompt once), not through the vision/audio encoder (see `omni_rl.training.forward`).

Splitting (`select` / `split` / `chunks`) keeps sequences in order and carries each referenced prompt once per piece,
re-indexed; the tensors themselves are shared by reference with the parent batch (no copy in-process).

Normalisation count: a sequence contributes `weight` (1 normally, 0 when filtered, e.g. overlong) to the step's
`global_num_seqs`; see `omni_rl.algorithms.normalization`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainPrompt:
    """One unique prompt: fully expanded prompt token ids + the processor's media tensors for the HF forward."""

    prompt_ids: list[int]
    mm_tensors: dict[str, Any] = field(default_factory=dict)  # str -> torch.Tensor (CPU)
    uid: str = ""  # sample id (logging / dedup only)


@dataclass
class TrainSequence:
    """One rollout of `prompts[prompt_index]`.

    `rollout_logp`: the rollout engine's logprobs of `response_ids` (for the train-vs-rollout mismatch metric and
    mask). `old_logp`: behaviour-policy logprobs for the GSPO ratio; None means on-policy (the trainer uses its own
    detached logp, exact when the batch is one optimizer step; the trainer group fills it otherwise).
    `weight`: loss weight and normalisation count (0 = filtered out). `truncated`: hit the length limit.
    `ref_logp`: the response's summed log-prob under the frozen initial policy (preference objectives).
    """

    prompt_index: int
    response_ids: list[int]
    advantage: float
    rollout_logp: list[float] | None = None
    old_logp: list[float] | None = None
    weight: float = 1.0
    truncated: bool = False
    ref_logp: float | None = None


@dataclass
class TrainBatch:
    prompts: list[TrainPrompt]
    sequences: list[TrainSequence]

    @property
    def num_sequences(self) -> int:
        return len(self.sequences)

    @property
    def seqs(self) -> list[TrainSequence]:
        """Alias of `sequences`."""
        return self.sequences

    @property
    def num_weighted(self) -> float:
        """Sum of sequence weights: this batch's share of `global_num_seqs`."""
        return float(sum(s.weight for s in self.sequences))

    def num_tokens(self) -> int:
        return sum(len(s.response_ids) for s in self.sequences)

    def select(self, indices: Sequence[int]) -> TrainBatch:
        """The sequences at `indices` (in that order) with the prompts they reference, each once, re-indexed."""
        remap: dict[int, int] = {}
        prompts: list[TrainPrompt] = []
        sequences: list[TrainSequence] = []
        for i in indices:
            seq = self.sequences[i]
            if seq.prompt_index not in remap:
                remap[seq.prompt_index] = len(prompts)
                prompts.append(self.prompts[seq.prompt_index])
            sequences.append(_with_prompt_index(seq, remap[seq.prompt_index]))
        return TrainBatch(prompts=prompts, sequences=sequences)

    def split(self, n: int, *, unit: int = 1) -> list[TrainBatch]:
        """`n` contiguous pieces whose sizes (in units of `unit` consecutive sequences, e.g. 2 for (chosen,
        rejected) pairs) differ by at most one (some may be empty when n > the number of units). Contiguous keeps a
        prompt's rollouts together, so its media goes to as few pieces as possible."""
        if n < 1:
            raise ValueError(f"split into n >= 1 pieces, got {n}")
        units = self._units(unit)
        return [self.select(range(r.start * unit, r.stop * unit)) for r in _even_ranges(units, n)]

    def chunks(self, size: int, *, unit: int = 1) -> list[TrainBatch]:
        """Consecutive pieces of at most `size` sequences (micro-batches), cut on `unit` boundaries (at least one
        unit per piece); [] for an empty batch."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        self._units(unit)
        step = max(unit, size - size % unit)
        return [self.select(range(i, min(i + step, self.num_sequences))) for i in range(0, self.num_sequences, step)]

    def _units(self, unit: int) -> int:
        if unit < 1 or self.num_sequences % unit:
            raise ValueError(f"{self.num_sequences} sequences do not form units of {unit}")
        return self.num_sequences // unit

    def micro_batches(self, size: int) -> list[TrainBatch]:
        """Alias of `chunks`: consecutive micro-batches of at most `size` sequences."""
        return self.chunks(size)

    def groups(self) -> list[tuple[int, list[int]]]:
        """[(prompt_index, [sequence indices])] in order of first appearance."""
        out: dict[int, list[int]] = {}
        for i, seq in enumerate(self.sequences):
            out.setdefault(seq.prompt_index, []).append(i)
        return list(out.items())

    def with_old_logp(self, old_logp: Sequence[Sequence[float]]) -> TrainBatch:
        """A copy whose sequences carry `old_logp` (one list per sequence, same order); prompts shared."""
        if len(old_logp) != self.num_sequences:
            raise ValueError(f"{len(old_logp)} old_logp lists for {self.num_sequences} sequences")
        seqs = [_replace(s, old_logp=list(lp)) for s, lp in zip(self.sequences, old_logp)]
        return TrainBatch(prompts=self.prompts, sequences=seqs)


# Short names (the trainer brief's spelling); construct with keywords, field order is that of the classes above.
PromptTensors = TrainPrompt
TrainSeq = TrainSequence


def _even_ranges(n_items: int, n: int) -> list[range]:
    base, extra = divmod(n_items, n)
    out, start = [], 0
    for k in range(n):
        size = base + (1 if k < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def _replace(seq: TrainSequence, **changes: Any) -> TrainSequence:
    from dataclasses import replace

    return replace(seq, **changes)


def _with_prompt_index(seq: TrainSequence, prompt_index: int) -> TrainSequence:
    return seq if seq.prompt_index == prompt_index else _replace(seq, prompt_index=prompt_index)

