"""Abstention: detection on the final answer, and the rule `reward` applies to every verifier (unanswerable rows score
1 for abstaining, 0 for answering; answerable rows score 0 for abstaining), in process and through worker processes.

Expected values by hand: the default format weight is 0.1, so reward = 0.9 * outcome + 0.1 * format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omni_rl.verifiers import BUILTIN_VERIFIERS, VerifierPool, get_verifier, reward, score_one_safe
from omni_rl.verifiers.abstention import (
    DEFAULT_ABSTENTION_MARKERS,
    abstains,
    check_markers,
    gold_is_marker,
    is_abstention,
)

T = "<think>The image shows a red circle and nothing else.</think>\n"
ABSTAIN = T + r"\boxed{It cannot be determined from the image.}"

# verifier -> (kwargs, gold answer, the response that gold scores 1.0 for with that verifier alone)
RIGHT = {
    "string-match": ({}, "red", T + r"\boxed{red}"),
    "mathruler": ({}, "2", T + r"\boxed{2}"),
    "multiple-choice": ({"options": ["red", "blue", "green"]}, "A", T + r"\boxed{A}"),
    "gui-coordinate": ({}, [500, 500], T + r"\boxed{(500, 500)}"),
    "asr": ({}, "hello world", T + r"\boxed{hello world}"),
    "format": ({}, None, T + r"\boxed{anything}"),
}


def test_every_builtin_verifier_is_covered():
    assert set(RIGHT) == set(BUILTIN_VERIFIERS)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_unanswerable_row_abstaining_scores_one(name):
    kwargs, answer, _ = RIGHT[name]
    r = reward(ABSTAIN, name, answer, unanswerable=True, **kwargs)
    assert (r.outcome, r.format, r.reward, r.error) == (1.0, 1.0, pytest.approx(1.0, abs=1e-12), None)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_unanswerable_row_answering_scores_zero_even_with_the_verifiers_right_answer(name):
    kwargs, answer, right = RIGHT[name]
    assert get_verifier(name)(right, answer, **kwargs) == 1.0  # the verifier alone would give full credit
    assert reward(right, name, answer, **kwargs).reward == pytest.approx(1.0, abs=1e-12)
    r = reward(right, name, answer, unanswerable=True, **kwargs)
    assert (r.outcome, r.format, r.error) == (0.0, 1.0, None)
    assert r.reward == pytest.approx(0.1, abs=1e-12)  # 0.9 * 0 + 0.1 * 1


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_answerable_row_abstaining_scores_zero(name):
    kwargs, answer, _ = RIGHT[name]
    r = reward(ABSTAIN, name, answer, **kwargs)
    assert (r.outcome, r.format, r.error) == (0.0, 1.0, None)
    assert r.reward == pytest.approx(0.1, abs=1e-12)


def test_answerable_abstention_zeroes_partial_credit():
    # asr alone: reference "cannot be determined here" (4 words) vs "cannot be determined" = 1 deletion, WER 1/4
    asr = get_verifier("asr")
    response = T + r"\boxed{cannot be determined}"
    assert asr(response, "cannot be determined here") == pytest.approx(0.75, abs=1e-12)
    r = reward(response, "asr", "cannot be determined here")
    assert (r.outcome, r.reward) == (0.0, pytest.approx(0.1, abs=1e-12))


ABSTAIN_PHRASINGS = [
    r"\boxed{It cannot be determined from the image.}",
    r"\boxed{Not enough information}",
    "The image does not show any clock, so this question is unanswerable.",
    r"\boxed{unanswerable}",
    "There is insufficient information in the chart to answer.",
    r"\boxed{None of the above}",
    "I can't tell from the picture.",
    "The question does not match the image.",
    r"\boxed{N/A}",
    r"\boxed{I don't know}",
    r"\boxed{The picture doesn't contain a triangle}",
]


@pytest.mark.parametrize("final", ABSTAIN_PHRASINGS)
def test_default_markers_and_phrasings(final):
    assert abstains(T + final)
    # unboxed ones: outcome 1, format 0 -> 0.9; boxed: 1.0
    want = 1.0 if r"\boxed" in final else 0.9
    assert reward(T + final, "string-match", "x", unanswerable=True).reward == pytest.approx(want, abs=1e-12)
    assert reward(T + final, "string-match", "Paris").outcome == 0.0


@pytest.mark.parametrize("response", [
    T + r"\boxed{Paris}",
    T + r"\boxed{7}",
    T + "The answer is red.",
    "<think>The question is unanswerable, so I cannot determine it",  # cut off inside the reasoning: no final answer
    r"<think>unanswerable</think> \boxed{red}",  # abstention inside the reasoning only
    "",
])
def test_not_abstaining(response):
    assert not abstains(response)


def test_abstention_is_read_from_the_final_answer():
    # a box after the reasoning is the final answer: the abstaining sentence around it does not count
    assert not abstains(T + r"It cannot be determined, but I guess \boxed{red}")
    assert abstains(T + r"I guess \boxed{cannot be determined}")


def test_gold_that_is_a_marker_declares_the_row_unanswerable():
    assert gold_is_marker("Unanswerable") and gold_is_marker(["x", "None of the above."])
    assert not gold_is_marker("cannot be determined from the chart") and not gold_is_marker(None)
    for name, answer in (("string-match", "unanswerable"), ("mathruler", "none of the above")):
        assert reward(ABSTAIN, name, answer).reward == pytest.approx(1.0, abs=1e-12)
        r = reward(T + r"\boxed{5}", name, answer)
        assert (r.outcome, r.reward) == (0.0, pytest.approx(0.1, abs=1e-12))


def test_format_weight_and_partial_credit_apply():
    # no box: outcome 1 (the text after the reasoning abstains), format 0 -> (1 - 0.3) * 1 + 0.3 * 0
    r = reward(T + "The image does not show a triangle.", "string-match", None, 0.3, unanswerable=True)
    assert (r.outcome, r.format, r.reward) == (1.0, 0.0, pytest.approx(0.7, abs=1e-12))
    # one extra <think> and one extra </think>: multiplier 0.81 on outcome and format
    r = reward(r"<think>a</think><think>b</think> \boxed{unanswerable}", "mathruler", "3", 0.3, unanswerable=True)
    assert (r.outcome, r.format, r.reward) == (pytest.approx(0.81), pytest.approx(0.81), pytest.approx(0.81))
    # two boxes, the second abstains: best of the graded boxes (1) times 0.9 for the extra box
    r = reward(T + r"\boxed{red} \boxed{unanswerable}", "string-match", "red", unanswerable=True)
    assert (r.outcome, r.format) == (pytest.approx(0.9, abs=1e-12), pytest.approx(0.9, abs=1e-12))
    # answerable, two boxes, one right and one abstaining: the right one counts, times 0.9
    r = reward(T + r"\boxed{unanswerable} \boxed{red}", "string-match", "red")
    assert r.outcome == pytest.approx(0.9, abs=1e-12)


def test_custom_markers_replace_the_builtin_ones():
    markers = ["no idea", "Beats me!"]
    assert check_markers(markers) == ("no idea", "Beats me!")
    assert is_abstention("I have NO idea.", markers) and is_abstention("beats me", markers)
    assert not is_abstention("cannot be determined", markers)  # a built-in marker, not in the list
    assert not is_abstention("no ideas", markers)  # whole words only
    r = reward(T + r"\boxed{No idea}", "string-match", "red", unanswerable=True, abstention_markers=markers)
    assert r.reward == pytest.approx(1.0, abs=1e-12)
    r = reward(ABSTAIN, "string-match", "red", unanswerable=True, abstention_markers=markers)
    assert (r.outcome, r.reward) == (0.0, pytest.approx(0.1, abs=1e-12))
    r = reward(T + r"\boxed{no idea}", "string-match", "red", abstention_markers=markers)  # answerable
    assert r.outcome == 0.0
    # a gold answer that is one of the custom markers declares the row unanswerable
    r = reward(T + r"\boxed{beats me}", "string-match", "no idea", abstention_markers=markers)
    assert r.outcome == 1.0
    # "unknown" is a built-in marker: with the custom list it is an ordinary gold answer
    assert reward(T + r"\boxed{unknown}", "string-match", "unknown", abstention_markers=markers).outcome == 1.0
    assert reward(T + r"\boxed{red}", "string-match", "unknown").outcome == 0.0  # built-in: unanswerable row


@pytest.mark.parametrize("bad", [[], ["??"], "no idea", [3], {"no idea": 1}])
def test_bad_markers_are_refused(bad):
    with pytest.raises(ValueError, match="abstention marker"):
        check_markers(bad)
    with pytest.raises(ValueError, match="abstention marker"):
        VerifierPool(0, abstention_markers=bad)


def test_default_markers_are_phrases_that_abstain():
    for m in DEFAULT_ABSTENTION_MARKERS:
        assert is_abstention(m) and gold_is_marker(m), m


def test_docs_list_only_builtin_markers():
    text = (Path(__file__).resolve().parents[2] / "docs" / "verifiers.md").read_text()
    listed = re.findall(r"`([^`]+)`", text.split("(`DEFAULT_ABSTENTION_MARKERS`:", 1)[1].split("...)", 1)[0])
    assert len(listed) >= 10 and set(listed) <= set(DEFAULT_ABSTENTION_MARKERS), listed


def test_score_one_safe_reads_the_item_fields():
    item = {"verifier": "multiple-choice", "answer": "A", "response": ABSTAIN, "unanswerable": True}
    assert score_one_safe(item).reward == pytest.approx(1.0, abs=1e-12)
    assert score_one_safe({**item, "unanswerable": False}).reward == pytest.approx(0.1, abs=1e-12)
    custom = {**item, "abstention_markers": ["no idea"]}
    assert score_one_safe(custom).outcome == 0.0
    r = score_one_safe({**item, "unanswerable": "yes"})
    assert r.reward == 0.0 and r.error.startswith("TypeError: unanswerable must be true or false")
    r = score_one_safe({**item, "verifier_kwargs": {"unanswerable": True}})
    assert r.reward == 0.0 and "give it as the item's own 'unanswerable' field" in r.error


def _pool_items() -> list[tuple[dict, float]]:
    """(item, hand-computed reward) for every built-in verifier: abstaining / answering on unanswerable rows,
    abstaining / answering right on answerable rows."""
    out = []
    for name, (kwargs, answer, right) in sorted(RIGHT.items()):
        base = {"verifier": name, "answer": answer, "verifier_kwargs": kwargs}
        out += [({**base, "response": ABSTAIN, "unanswerable": True}, 1.0),
                ({**base, "response": right, "unanswerable": True}, 0.1),
                ({**base, "response": ABSTAIN}, 0.1),
                ({**base, "response": right, "unanswerable": False}, 1.0)]
    return out


def test_pool_workers_apply_the_rule(pool):
    cases = _pool_items()
    results, stats = pool.score([it for it, _ in cases])
    assert stats["errors"] == 0 and stats["timeouts"] == 0
    for (it, want), r in zip(cases, results):
        assert r.reward == pytest.approx(want, abs=1e-12), it


@pytest.mark.parametrize("workers", [1, 0])
def test_pool_custom_markers_reach_the_workers(workers):
    markers = ["no idea"]
    items = [{"verifier": "asr", "answer": "hello world", "response": T + r"\boxed{No idea.}", "unanswerable": True},
             {"verifier": "asr", "answer": "hello world", "response": ABSTAIN, "unanswerable": True},
             {"verifier": "mathruler", "answer": "2", "response": T + r"\boxed{no idea}"},
             {"verifier": "mathruler", "answer": "2", "response": T + r"\boxed{2}"}]
    with VerifierPool(workers, timeout_s=30.0, abstention_markers=markers) as p:
        results, stats = p.score(items)
    assert stats["errors"] == 0
    assert [r.reward for r in results] == pytest.approx([1.0, 0.1, 0.1, 1.0], abs=1e-12)
