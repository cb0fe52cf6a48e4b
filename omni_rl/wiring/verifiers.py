"""The verifier pool of a stage or an offline job, built from `verify.*` and scoring whole rollout groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omni_rl.config.schema import OmniRLConfig
from omni_rl.data.types import Prompt, Rollout, ScoredRollout
from omni_rl.verifiers.pool import VerifierPool


class RolloutScorer:
    """A `omni_rl.verifiers.VerifierPool` built from `verify.*`, scoring whole rollout groups against their
    prompt's answer (`score_groups`: one `ScoredRollout` per rollout, in group order)."""

    def __init__(self, cfg: OmniRLConfig):
        self.abstention_markers = cfg.verify.abstention_markers  # None: the built-in markers
        self._pool = VerifierPool(cfg.verify.num_workers, timeout_s=cfg.verify.timeout_s,
                                 format_weight=cfg.verify.format_weight, abstention_markers=self.abstention_markers,
                                 plugins=cfg.verify.plugins)

    def score_groups(self, prompts: Sequence[Prompt], groups: Sequence[Sequence[Rollout]]
                     ) -> tuple[list[list[ScoredRollout]], dict[str, Any]]:
        items = [{"verifier": p.sample.verifier, "answer": p.sample.answer, "response": r.text,
                  "verifier_kwargs": p.sample.verifier_kwargs, "unanswerable": p.sample.unanswerable}
                 for p, g in zip(prompts, groups) for r in g]
        results, stats = self._pool.score(items)
        it = iter(results)
        scored = [[_scored(r, next(it)) for r in g] for g in groups]
        return scored, stats

    def close(self) -> None:
        self._pool.close()


def _scored(rollout: Rollout, res: Any) -> ScoredRollout:
    return ScoredRollout(rollout=rollout, reward=res.reward, outcome=res.outcome, format=res.format,
                         verifier_error=res.error)


def build_rollout_scorer(cfg: OmniRLConfig) -> RolloutScorer:
    return RolloutScorer(cfg)
