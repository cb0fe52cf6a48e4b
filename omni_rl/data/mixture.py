"""Deterministic, resumable prompt sampling from a mixture of sources.

The batch of step k is a pure function of (seed, step, rows, weights): resuming at step k reproduces exactly the
batches an uninterrupted run would have drawn, with nothing repeated or skipped (the failure mode of EasyR1 #57 and
verl PR #5725). There is therefore no sampler state to checkpoint beyond the step number.

Within a source, rows are visited in a fresh permutation per epoch (no row repeats before every row of that source
has been seen). Across sources, each slot of a batch picks a source with probability proportional to its weight;
per-source positions are recovered by replaying the (cheap) source draws of earlier steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class MixtureSampler:
    def __init__(self, sources: Sequence[str], *, weights: dict[str, float] | None, seed: int):
        """`sources[i]` is the source name of row i. `weights` maps source -> weight; None/empty -> every row
        equally likely (source weight proportional to its row count). A weight of 0 turns a source off, and may
        name a source the data does not have: that is how a command line drops a stage's default weights (Hydra
        merges `data.mixture` overrides into the stage's dict, it cannot delete keys)."""
        self.seed = seed
        names = sorted(set(sources))
        self.rows_by_source = {s: np.array([i for i, x in enumerate(sources) if x == s]) for s in names}
        if weights:
            unknown = {s for s, w in weights.items() if s not in names and w != 0}
            if unknown:
                off = " ".join(f"data.mixture.{s}=0" for s in sorted(unknown))
                raise ValueError(f"mixture weights name unknown sources {sorted(unknown)}; sources are {names}. A "
                                 f"stage's default weights for tasks your data lacks are turned off with: {off}")
            names = [s for s in names if weights.get(s, 0.0) > 0]
            if not names:
                raise ValueError("mixture weights are all zero")
            w = np.array([weights[s] for s in names], dtype=np.float64)
        else:
            w = np.array([len(self.rows_by_source[s]) for s in names], dtype=np.float64)
        self.names = names
        self.probs = w / w.sum()

    def _source_draws(self, step: int, batch_size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step, 0])
        return rng.choice(len(self.names), size=batch_size, p=self.probs)

    def _row(self, source: str, position: int) -> int:
        rows = self.rows_by_source[source]
        epoch, offset = divmod(position, len(rows))
        perm = np.random.default_rng([self.seed, epoch, 1, _stable_hash(source)]).permutation(len(rows))
        return int(rows[perm[offset]])

    def batch(self, step: int, batch_size: int) -> list[int]:
        """Row indices of step `step` (0-based)."""
        counts = np.zeros(len(self.names), dtype=np.int64)
        for k in range(step):
            counts += np.bincount(self._source_draws(k, batch_size), minlength=len(self.names))
        out = []
        for j in self._source_draws(step, batch_size):
            out.append(self._row(self.names[j], int(counts[j])))
            counts[j] += 1
        return out


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; resumes need a stable value.
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h
