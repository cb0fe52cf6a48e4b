"""format score and the outcome+format combinator (RECIPE: partial credit 0.9 per extra think tag / box)."""

from __future__ import annotations

import pytest

from omni_rl.verifiers import RewardResult, get_verifier, register_verifier, reward

fmt = get_verifier("format")

FORMAT_CASES = [
    (r"<think>reason</think> The answer is \boxed{1}.", 1.0),
    (r"reason injected-open</think> \boxed{1}", 1.0),  # template injected <think>
    (r"<think>r</think> \boxed{1} or \boxed{2}", 0.9),  # one extra box
    (r"<think>r</think> \boxed{1} \boxed{2} \boxed{3}", 0.81),
    (r"<think>a</think><think>b</think> \boxed{1}", 0.81),  # one extra <think> and one extra </think>
    (r"<think>a</think></think> \boxed{1}", 0.9),  # one extra </think>
    (r"<think><think>a</think> \boxed{1}", 0.9),  # one extra <think>
    (r"<think>a</think><think>b</think> \boxed{1} \boxed{2}", 0.729),
    (r"<think>try \boxed{3}</think> \boxed{1}", 1.0),  # boxes inside the reasoning do not count
    (r"\boxed{1}", 0.0),  # no think block
    (r"<think>r</think> the answer is 1", 0.0),  # no box
    (r"<think>never closed \boxed{1}", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize("response, expected", FORMAT_CASES)
def test_format_score(response, expected):
    assert fmt(response, None) == pytest.approx(expected, abs=1e-12)


def test_reward_combination_single_box():
    r = reward(r"<think>r</think> \boxed{2}", "mathruler", "2")
    assert r == RewardResult(outcome=1.0, format=1.0, reward=1.0, error=None)
    r = reward(r"<think>r</think> \boxed{3}", "mathruler", "2")
    assert (r.outcome, r.format, r.reward) == (0.0, 1.0, pytest.approx(0.1))
    r = reward(r"\boxed{2}", "mathruler", "2")  # right answer, no think block: 0.9 * 1 + 0.1 * 0
    assert (r.outcome, r.format, r.reward) == (1.0, 0.0, pytest.approx(0.9))


def test_reward_multiple_boxes_best_of_first_three_with_penalty():
    # boxes 3, 2, 5: best of the first three is correct (2); 2 extra boxes -> outcome 0.81, format 0.81
    r = reward(r"<think>r</think> \boxed{3} \boxed{2} \boxed{5}", "mathruler", "2")
    assert r.outcome == pytest.approx(0.81, abs=1e-12)
    assert r.format == pytest.approx(0.81, abs=1e-12)
    assert r.reward == pytest.approx(0.9 * 0.81 + 0.1 * 0.81, abs=1e-12)
    # the correct answer as the 4th box is not graded
    r = reward(r"<think>r</think> \boxed{3} \boxed{4} \boxed{5} \boxed{2}", "mathruler", "2")
    assert r.outcome == 0.0
    assert r.format == pytest.approx(0.9 ** 3, abs=1e-12)


def test_reward_extra_think_tags_discount_outcome():
    r = reward(r"<think>a</think><think>b</think> \boxed{B}", "multiple-choice", "B")
    assert r.outcome == pytest.approx(0.81, abs=1e-12)
    assert r.reward == pytest.approx(0.81, abs=1e-12)


def test_format_weight():
    r = reward(r"\boxed{2}", "mathruler", "2", format_weight=0.0)
    assert r.reward == 1.0
    r = reward(r"<think>r</think> \boxed{3}", "mathruler", "2", format_weight=0.5)
    assert r.reward == pytest.approx(0.5)
    with pytest.raises(ValueError):
        reward("x", "mathruler", "2", format_weight=1.5)


def test_reward_passes_verifier_kwargs():
    r = reward("<think>r</think> \\boxed{(550, 500)}", "gui-coordinate", [500, 500], radius=0.1)
    assert r.outcome == pytest.approx(0.25, abs=1e-12)


def test_errors_score_zero_and_are_reported():
    r = reward(r"<think>r</think> \boxed{2}", "test-boom", "2")
    assert r.reward == 0.0 and r.outcome == 0.0
    assert r.error.startswith("RuntimeError: boom")
    r = reward(r"<think>r</think> \boxed{2}", "test-nan", "2")
    assert r.reward == 0.0 and "non-finite" in r.error
    r = reward(r"<think>r</think> \boxed{2}", "no-such-verifier", "2")
    assert r.reward == 0.0 and "UnknownVerifierError" in r.error
    r = reward(None, "mathruler", "2")
    assert r.reward == 0.0 and "TypeError" in r.error


def test_out_of_range_scores_are_clamped():
    r = reward(r"<think>r</think> \boxed{2}", "test-too-big", "2")
    assert r.outcome == 1.0 and r.error is None


def test_runtime_registered_verifier_in_reward(clean_registry):
    register_verifier("kw-echo")(__import__("verifier_test_plugins").echo_kwargs)
    assert reward(r"<think>r</think> \boxed{x}", "kw-echo", None, value=0.5).outcome == 0.5


def test_score_one_safe_never_raises():
    from omni_rl.verifiers import score_one_safe

    assert score_one_safe({"verifier": "mathruler", "answer": "2", "response": r"\boxed{2}"}).outcome == 1.0
    assert score_one_safe({"answer": "2"}).error.startswith("KeyError")
    assert score_one_safe({"verifier": "mathruler", "answer": "2", "response": "x",
                           "verifier_kwargs": [1]}).error.startswith("TypeError")
