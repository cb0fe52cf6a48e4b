"""Per-step metrics computed on the driver from scored rollout groups (pure Python, no Ray)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from omni_rl.data.types import Prompt, ScoredRollout

CORRECT = 1.0 - 1e-9  # an outcome counts as correct for pass@k when it is (numerically) 1


def reward_metrics(prompts: Sequence[Prompt], scored: Sequence[Sequence[ScoredRollout]],
                   verify_stats: dict[str, Any]) -> dict[str, float]:
    """Mean reward overall, per source, per modality (text / image / video / audio / omni) and per verifier;
    pass@1 / pass@G; verifier error and timeout counts."""
    flat = [r for g in scored for r in g]
    out: dict[str, float] = {
        "reward/mean": fmean(r.reward for r in flat),
        "reward/outcome": fmean(r.outcome for r in flat),
        "reward/format": fmean(r.format for r in flat),
        "reward/pass@1": fmean(float(r.outcome >= CORRECT) for r in flat),
        "reward/pass@G": fmean(float(any(r.outcome >= CORRECT for r in g)) for g in scored),
        "verify/errors": float(verify_stats.get("errors", 0)),
        "verify/timeouts": float(verify_stats.get("timeouts", 0)),
    }
    by_source: dict[str, list[float]] = defaultdict(list)
    by_modality: dict[str, list[float]] = defaultdict(list)
    by_verifier: dict[str, list[float]] = defaultdict(list)
    for prompt, group in zip(prompts, scored):
        for r in group:
            by_source[prompt.sample.source].append(r.reward)
            by_modality[prompt.sample.modality].append(r.reward)
            by_verifier[prompt.sample.verifier].append(r.reward)
    out.update({f"reward/source/{k}": fmean(v) for k, v in sorted(by_source.items())})
    out.update({f"reward/modality/{k}": fmean(v) for k, v in sorted(by_modality.items())})
    out.update({f"reward/verifier/{k}": fmean(v) for k, v in sorted(by_verifier.items())})
    return out


def abstention_metrics(prompts: Sequence[Prompt], scored: Sequence[Sequence[ScoredRollout]],
                       markers: Sequence[str] | None = None) -> dict[str, float]:
    """How often responses abstain (`omni_rl.verifiers.abstention`, `markers` None: the built-in ones):
    `abstain_rate/unanswerable` over the responses to rows with `unanswerable: true` (right), `abstain_rate/answerable`
    over the others (false abstention). A kind with no rows gets no key."""
    from omni_rl.verifiers.abstention import abstains

    by_kind: dict[str, list[float]] = defaultdict(list)
    for prompt, group in zip(prompts, scored):
        kind = "unanswerable" if prompt.sample.unanswerable else "answerable"
        by_kind[kind].extend(float(abstains(r.rollout.text, markers)) for r in group)
    return {f"abstain_rate/{k}": fmean(v) for k, v in sorted(by_kind.items()) if v}


def rollout_metrics(scored: Sequence[Sequence[ScoredRollout]]) -> dict[str, float]:
    """Response length and truncation. Media bytes (unique / logical / physical / sent) come from the rollout group
    (`omni_rl.rollout.dedup.media_metrics`), which knows what it actually put in the object store."""
    flat = [r.rollout for g in scored for r in g]
    return {
        "response/length_mean": fmean(len(r.token_ids) for r in flat),
        "response/truncated_frac": fmean(float(r.finish_reason == "length") for r in flat),
    }
