"""`build_train_batch`: group-normalised advantages, zero-variance groups dropped (or kept with advantage 0 when
`algorithm.train_zero_variance_groups`), truncated rollouts weighted 0 under the overlong filter."""

import pytest

from omni_rl.config import compose_config
from omni_rl.controller.train_batch import build_train_batch
from omni_rl.data.types import Prompt, Rollout, Sample, ScoredRollout


def _step(rewards: list[list[float]], truncated: tuple[int, int] | None = None):
    prompts, scored = [], []
    for p, group in enumerate(rewards):
        sample = Sample(id=f"p{p}", source="s", messages=[{"role": "user", "content": "q"}], verifier="string_match",
                        answer="a")
        prompts.append(Prompt(sample=sample, prompt_ids=[10 + p, 11], vllm_inputs={}))
        scored.append([ScoredRollout(rollout=Rollout(prompt_index=p, token_ids=[20 + g], logprobs=[-1.0], text="x",
                                                     finish_reason="length" if (p, g) == truncated else "stop",
                                                     policy_version=0),
                                     reward=r, outcome=r, format=0.0) for g, r in enumerate(group)])
    return prompts, scored


@pytest.mark.parametrize("keep", [False, True])
def test_zero_variance_groups_are_dropped_or_kept_with_advantage_zero(keep):
    cfg = compose_config([f"algorithm.train_zero_variance_groups={str(keep).lower()}"])
    prompts, scored = _step([[1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]], truncated=(0, 1))
    batch, m = build_train_batch(cfg, prompts, scored)
    assert (m["adv/zero_variance_groups"], m["adv/groups"], m["adv/overlong_masked"]) == (1.0, 2.0, 1.0)
    # group 0: mean 0.5, std 0.5 (population) -> advantages +-1 (up to adv_eps)
    first = [s.advantage for s in batch.sequences if s.prompt_index == 0]
    assert first == pytest.approx([1.0, -1.0, 1.0, -1.0], abs=1e-5)
    assert [s.weight for s in batch.sequences if s.prompt_index == 0] == [1.0, 0.0, 1.0, 1.0]  # truncated: weight 0
    if keep:
        assert [p.uid for p in batch.prompts] == ["p0", "p1"] and m["adv/train_seqs"] == 8.0
        assert [s.advantage for s in batch.sequences if s.prompt_index == 1] == [0.0] * 4
    else:
        assert [p.uid for p in batch.prompts] == ["p0"] and m["adv/train_seqs"] == 4.0
