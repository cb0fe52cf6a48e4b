"""The held-out evaluation of a stage: one greedy response per held-out prompt, scored like training rollouts."""

from __future__ import annotations

import time

from omni_rl.controller.stats import abstention_metrics, reward_metrics
from omni_rl.rollout.group import RolloutGroup
from omni_rl.wiring.data import Data
from omni_rl.wiring.verifiers import RolloutScorer


def evaluate(data: Data, rollout: RolloutGroup, verifier: RolloutScorer, *, step: int) -> dict[str, float]:
    """One greedy response (temperature 0) per held-out prompt, scored like training rollouts: `eval/mean`,
    `eval/outcome`, `eval/format`, `eval/pass@1`, `eval/source/*`, `eval/verifier/*`, `eval/abstain_rate/*`,
    `time/eval`, of the policy the rollout workers hold now (at `step`: before that step's update)."""
    t = time.perf_counter()
    prompts = [data.render(i) for i in range(len(data.samples))]
    groups, _ = rollout.generate(prompts, n=1, seed=step, sampling={"temperature": 0.0})
    scored, stats = verifier.score_groups(prompts, groups)
    out = {k.replace("reward/", "eval/", 1): v for k, v in reward_metrics(prompts, scored, stats).items()
           if k.startswith("reward/") and k != "reward/pass@G"}
    out.update({f"eval/{k}": v for k, v in abstention_metrics(prompts, scored, verifier.abstention_markers).items()})
    out["time/eval"] = time.perf_counter() - t
    return out
