"""Driver-side step metrics on hand-built groups."""

import pytest

from omni_rl.controller.stats import abstention_metrics, reward_metrics, rollout_metrics
from omni_rl.data.types import Prompt, Rollout, Sample, ScoredRollout


def _prompt(source, verifier, media_bytes=100, modality="text"):
    s = Sample(id=source, source=source, messages=[], verifier=verifier, answer="1", modality=modality)
    return Prompt(sample=s, prompt_ids=[1, 2], vllm_inputs={}, media_bytes=media_bytes)


def _sr(reward, outcome, fmt, n_tok=3, finish="stop"):
    r = Rollout(prompt_index=0, token_ids=list(range(n_tok)), logprobs=[0.0] * n_tok, text="", finish_reason=finish,
                policy_version=0)
    return ScoredRollout(rollout=r, reward=reward, outcome=outcome, format=fmt)


def test_reward_metrics_hand_values():
    prompts = [_prompt("a", "mathruler"), _prompt("b", "asr", modality="audio"), _prompt("c", "asr", modality="audio")]
    scored = [[_sr(1.0, 1.0, 1.0), _sr(0.1, 0.0, 1.0)], [_sr(0.5, 0.5, 0.5), _sr(0.0, 0.0, 0.0)],
              [_sr(0.3, 0.3, 1.0), _sr(0.2, 0.2, 1.0)]]
    m = reward_metrics(prompts, scored, {"errors": 2, "timeouts": 1})
    assert m["reward/modality/text"] == pytest.approx(0.55) and m["reward/modality/audio"] == pytest.approx(0.25)
    assert m["reward/source/c"] == pytest.approx(0.25)
    assert m["reward/mean"] == pytest.approx((1.0 + 0.1 + 0.5 + 0.0 + 0.3 + 0.2) / 6)
    assert m["reward/source/a"] == pytest.approx(0.55)
    assert m["reward/verifier/asr"] == pytest.approx(0.25)
    assert m["reward/pass@1"] == pytest.approx(1 / 6)  # one outcome == 1 of six
    assert m["reward/pass@G"] == pytest.approx(1 / 3)  # group a has a correct rollout, b and c have none
    assert (m["verify/errors"], m["verify/timeouts"]) == (2.0, 1.0)


def test_rollout_metrics_length_and_truncation():
    scored = [[_sr(0, 0, 0, 2), _sr(0, 0, 0, 4, "length")], [_sr(0, 0, 0, 6), _sr(0, 0, 0, 8)]]
    m = rollout_metrics(scored)
    assert m["response/length_mean"] == 5.0  # (2 + 4 + 6 + 8) / 4
    assert m["response/truncated_frac"] == 0.25


def _said(text, unanswerable):
    s = Sample(id="x", source="x", messages=[], verifier="string-match", answer="red", unanswerable=unanswerable)
    p = Prompt(sample=s, prompt_ids=[1], vllm_inputs={}, media_bytes=0)
    r = Rollout(prompt_index=0, token_ids=[1], logprobs=[0.0], text=text, finish_reason="stop", policy_version=0)
    return p, ScoredRollout(rollout=r, reward=0.0, outcome=0.0, format=0.0)


def test_abstention_rates_hand_values():
    t = "<think>r</think> "
    rows = [_said(t + r"\boxed{unanswerable}", True), _said(t + r"\boxed{red}", True),
            _said(t + "The image does not show a triangle.", True),  # 2 of 3 unanswerable rows abstain
            _said(t + r"\boxed{red}", False), _said(t + r"\boxed{blue}", False), _said(t + r"\boxed{7}", False),
            _said(t + r"\boxed{cannot be determined}", False)]  # 1 of 4 answerable rows abstains
    prompts, scored = [p for p, _ in rows], [[r] for _, r in rows]
    m = abstention_metrics(prompts, scored)
    assert m == {"abstain_rate/unanswerable": pytest.approx(2 / 3), "abstain_rate/answerable": pytest.approx(0.25)}
    # custom markers replace the built-in ones: only "red" counts now
    assert abstention_metrics(prompts, scored, ["red"]) == {"abstain_rate/unanswerable": pytest.approx(1 / 3),
                                                            "abstain_rate/answerable": pytest.approx(0.25)}
    # a kind without rows has no key; rates are per response, over whole groups
    m = abstention_metrics(prompts[:1], [[scored[0][0], scored[1][0]]])
    assert m == {"abstain_rate/unanswerable": pytest.approx(0.5)}
