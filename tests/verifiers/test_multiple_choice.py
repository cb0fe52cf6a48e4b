"""multiple-choice: letter formats seen in real outputs, options text, conflicts, penalty."""

from __future__ import annotations

import pytest

from omni_rl.verifiers import get_verifier

mc = get_verifier("multiple-choice")
T = "<think>Option A is wrong because ... option C contradicts the figure ... so B.</think>\n"
OPTS = {"A": "Paris", "B": "London", "C": "Berlin", "D": "Rome"}

CASES = [
    # bare letters with tolerated decorations: full score
    (T + r"\boxed{B}", "B", {}, 1.0),
    (T + r"\boxed{(B)}", "B", {}, 1.0),
    (T + r"\boxed{B.}", "B", {}, 1.0),
    (T + r"\boxed{B:}", "B", {}, 1.0),
    (T + r"\boxed{B)}", "B", {}, 1.0),
    (T + r"\boxed{b}", "B", {}, 1.0),
    (T + r"\boxed{\text{B}}", "B", {}, 1.0),
    (T + "Answer: B", "B", {}, 1.0),
    (T + "**B**", "B", {}, 1.0),
    (T + "The answer is B.", "B", {}, 1.0),
    (T + "The correct answer is (B).", "B", {}, 1.0),
    (T + "B", "(B)", {}, 1.0),  # gold written with parentheses
    # extra characters beyond the letter: small penalty
    (T + r"\boxed{B. London}", "B", {}, 0.9),
    (T + r"\boxed{(B) London}", "B", {}, 0.9),
    (T + r"\boxed{\text{Option B}}", "B", {}, 0.9),
    (T + "I would go with (B) since the tower is in London", "B", {}, 0.9),
    # options text counts
    (T + r"\boxed{London}", "B", {"options": OPTS}, 0.9),
    (T + r"\boxed{London}", "London", {"options": OPTS}, 0.9),  # gold given as option text
    (T + r"\boxed{B}", 1, {"options": ["Paris", "London", "Berlin"]}, 1.0),  # gold as 0-based index, options as list
    # two different letters, or a letter contradicting its text: 0
    (T + r"\boxed{B or C}", "B", {}, 0.0),
    (T + r"\boxed{A, C}", "A", {}, 0.0),
    (T + r"\boxed{B. Paris or C. London}", "B", {}, 0.0),
    (T + r"\boxed{B. Berlin}", "B", {"options": OPTS}, 0.0),
    # wrong or missing
    (T + r"\boxed{C}", "B", {}, 0.0),
    (T + r"\boxed{E}", "B", {"options": OPTS}, 0.0),  # not a valid letter
    ("<think>B is plausible but I ran out of tokens", "B", {}, 0.0),
    # the option text contains a capital letter: not a second choice
    (T + r"\boxed{(B) vitamin C.}", "B", {}, 0.9),
]


@pytest.mark.parametrize("response, gold, kwargs, expected", CASES)
def test_cases(response, gold, kwargs, expected):
    assert mc(response, gold, **kwargs) == pytest.approx(expected, abs=1e-12)


def test_custom_penalty():
    assert mc(r"\boxed{B. London}", "B", extra_penalty=0.5) == 0.5


def test_bad_gold_raises():
    with pytest.raises(ValueError):
        mc(r"\boxed{B}", "not a letter at all")
    with pytest.raises(ValueError):
        mc(r"\boxed{B}", 1)  # integer gold without options
