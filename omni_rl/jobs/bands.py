"""Pass rates and pass-rate bands: which prompts an RL stage keeps.

A rollout *passes* when its score (the verifier's outcome by default) is at least the success threshold of its
verifier; a prompt's pass rate is passes / n. A band is an ordered list of rules; the first rule whose `source`,
`modality` and `verifier` lists all match the row (an empty list matches anything) decides, and the row is kept when
`low <= pass_rate <= high` (`pass_rate < high` with `high_inclusive: false`). A row no rule matches is kept.
Pure functions, no heavy imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KEPT, TOO_EASY, TOO_HARD = "kept", "too_easy", "too_hard"
AUDIO_QA_VERIFIERS = ["string-match", "multiple-choice", "mathruler"]  # audio rows answered by QA, not transcription


@dataclass(frozen=True)
class Band:
    low: float = 0.0
    high: float = 1.0
    high_inclusive: bool = True
    source: tuple[str, ...] = ()
    modality: tuple[str, ...] = ()
    verifier: tuple[str, ...] = ()
    name: str = ""

    def matches(self, *, source: str, modality: str, verifier: str) -> bool:
        return all(not allowed or value in allowed for allowed, value in
                   ((self.source, source), (self.modality, modality), (self.verifier, verifier)))

    def classify(self, pass_rate: float) -> str:
        if pass_rate < self.low:
            return TOO_HARD
        if pass_rate > self.high or (not self.high_inclusive and pass_rate >= self.high):
            return TOO_EASY
        return KEPT

    def describe(self) -> str:
        where = ", ".join(f"{k} in {list(v)}" for k, v in (("source", self.source), ("modality", self.modality),
                                                          ("verifier", self.verifier)) if v) or "any row"
        return f"{where}: keep {self.low:g} <= pass rate {'<=' if self.high_inclusive else '<'} {self.high:g}"


KEEP_ALL = Band(name="keep_all")

# The recipe's bands (pass rate of the stage's initial policy, 8 rollouts per prompt).
BAND_PRESETS: dict[str, list[Band]] = {
    "keep_all": [],
    # image RL: drop prompts the initial policy already solves at least 80% of the time
    "image_rl": [Band(low=0.0, high=0.8, high_inclusive=False, name="image_rl")],
    # omni RL: 0.1-0.9, narrowed to 0.3-0.7 for audio question answering (rules are matched in order)
    "omni_rl": [Band(low=0.3, high=0.7, modality=("audio",), verifier=tuple(AUDIO_QA_VERIFIERS), name="audio_qa"),
                Band(low=0.1, high=0.9, name="omni_rl")],
}


def bands_from_config(preset: str, rules: Sequence[Any]) -> list[Band]:
    """`filter.bands` (matched first, in order) followed by the rules of `filter.band_preset`."""
    if preset not in BAND_PRESETS:
        raise ValueError(f"filter.band_preset={preset!r}: choose one of {', '.join(BAND_PRESETS)}")
    out = []
    for i, r in enumerate(rules):
        get = r.get if isinstance(r, Mapping) else (lambda k, d=None, r=r: getattr(r, k, d))
        band = Band(low=float(get("low", 0.0)), high=float(get("high", 1.0)),
                    high_inclusive=bool(get("high_inclusive", True)), source=tuple(get("source", ()) or ()),
                    modality=tuple(get("modality", ()) or ()), verifier=tuple(get("verifier", ()) or ()),
                    name=str(get("name", "") or f"bands[{i}]"))
        if not 0.0 <= band.low <= band.high <= 1.0:
            raise ValueError(f"filter.bands[{i}]: need 0 <= low <= high <= 1, got low={band.low} high={band.high}")
        out.append(band)
    return out + BAND_PRESETS[preset]


def band_for(bands: Sequence[Band], *, source: str, modality: str, verifier: str) -> Band:
    for band in bands:
        if band.matches(source=source, modality=modality, verifier=verifier):
            return band
    return KEEP_ALL


def success_threshold(verifier: str, default: float, per_verifier: Mapping[str, float]) -> float:
    return float(per_verifier.get(verifier, default))


def pass_rate(scores: Sequence[float], threshold: float) -> float:
    """Fraction of `scores` at or above `threshold` (0.0 for no scores)."""
    return sum(1 for s in scores if s >= threshold) / len(scores) if scores else 0.0


@dataclass
class Tally:
    """Counts of one report group (a source, a modality or a verifier)."""

    rows_in: int = 0
    scored: int = 0
    kept: int = 0
    too_easy: int = 0
    too_hard: int = 0
    rejected: int = 0
    pass_rate_sum: float = 0.0
    score_sum: float = 0.0  # of the rows' mean scores, over the `score_rows` rows that carry their scores
    score_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str, pass_rate_value: float | None = None, reason: str | None = None,
            mean_score: float | None = None) -> None:
        self.rows_in += 1
        if outcome == "rejected":
            self.rejected += 1
            code = (reason or "unknown").split(":", 1)[0]
            self.reasons[code] = self.reasons.get(code, 0) + 1
            return
        self.scored += 1
        self.pass_rate_sum += float(pass_rate_value or 0.0)
        if mean_score is not None:
            self.score_sum += float(mean_score)
            self.score_rows += 1
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "scored": self.scored, "kept": self.kept, "too_easy": self.too_easy,
                "too_hard": self.too_hard, "filtered_out": self.too_easy + self.too_hard, "rejected": self.rejected,
                "mean_pass_rate": round(self.pass_rate_sum / self.scored, 4) if self.scored else None,
                "mean_score": round(self.score_sum / self.score_rows, 4) if self.score_rows else None,
                "reject_reasons": dict(sorted(self.reasons.items()))}
