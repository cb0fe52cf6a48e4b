"""Answer extraction (omni_rl.verifiers.extract)."""

from __future__ import annotations

import time

import pytest

from omni_rl.verifiers.extract import extract_answer, find_boxed, last_boxed, strip_reasoning


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>reasoning</think>answer", "answer"),
        ("reasoning injected by template</think>answer", "answer"),  # no opening tag: template injected it
        ("<think>a</think> mid <think>b</think> final", " final"),  # after the LAST </think>
        ("<think>cut off mid-thought", ""),  # never closed: no answer
        ("no tags at all", "no tags at all"),
    ],
)
def test_strip_reasoning(text, expected):
    assert strip_reasoning(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\boxed{42}", "42"),
        (r"so \boxed{\frac{1}{2}} done", r"\frac{1}{2}"),  # nested braces
        (r"\boxed{1} then \boxed{2}", "2"),  # last box
        (r"\fbox{7}", "7"),
        (r"\boxed 5 and more", "5"),  # brace-less form
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces do not count
        (r"\boxed{unbalanced", None),
        ("nothing", None),
        (r"\boxed{a} \boxed{b", "a"),  # the last balanced box
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_find_boxed_in_order():
    assert find_boxed(r"\boxed{1} x \boxed{ 2 } \fbox{3}") == ["1", "2", "3"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"<think>\boxed{9}</think> The answer is \boxed{3}.", "3"),
        (r"<think>\boxed{9}</think> no box here", "no box here"),  # boxes in the reasoning are ignored
        ("Some work.\nAnswer: B", "B"),
        ("**Final Answer:** 12", "12"),
        ("Thus the final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("The answer is 42.", "42"),
        ("I pick **Paris** of course", "Paris"),
        ("line one\nline two\n\n", "line two"),
        ("", None),
        ("<think>unterminated", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_hostile_inputs_are_linear():
    # quantifier-heavy / unbalanced inputs that would be quadratic with naive regexes or scans
    hostile = [
        "answer" + " " * 200_000 + "x",
        "the answer " + " \t" * 100_000,
        r"\boxed{" * 50_000,
        "{" * 100_000 + r"\boxed{1}",
        "**" * 100_000,
        "</think>" * 20_000 + r"\boxed{1}",
    ]
    t0 = time.perf_counter()
    for h in hostile:
        extract_answer(h)
        find_boxed(h)
    # generous bound (2 shared cores); a quadratic blow-up would take minutes
    assert time.perf_counter() - t0 < 20
