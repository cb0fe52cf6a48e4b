"""The numeric fast path of mathruler (latex_eval) and its agreement with math-verify."""

from __future__ import annotations

import math

import pytest

from omni_rl.verifiers.latex_eval import Unsupported, evaluate
from omni_rl.verifiers.mathruler import _compare_lists, _mv_equal, canonical_latex, math_equal


@pytest.mark.parametrize(
    "s, value",
    [
        ("1/2", 0.5),
        (r"\frac{3}{4}", 0.75),
        (r"\frac34", 0.75),
        (r"-\frac{1}{2}", -0.5),
        (r"2\sqrt{2}", 2 * math.sqrt(2)),
        (r"\sqrt[3]{27}", 3.0),
        (r"2^{10}", 1024.0),
        ("2^10", 1024.0),  # read as 2^{10}, like math-verify (strict LaTeX would be 2^1 * 0)
        (r"3\cdot 4", 12.0),
        (r"6 \div 4", 1.5),
        (r"\pi", math.pi),
        ("e", math.e),
        (r"\sin\frac{\pi}{6}", 0.5),
        (r"\log_2 8", 3.0),
        (r"\log 100", 2.0),
        (r"\ln e^2", 2.0),
        (r"\sin^2 \frac{\pi}{4}", 0.5),
        ("(1+2)(3+4)", 21.0),
        (".5", 0.5),
    ],
)
def test_values(s, value):
    assert evaluate(s).value == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize(
    "s",
    [r"9^{9^{9}}", r"\frac{1}{0}", "0^{-1}", "x=2", "1,2", r"\infty", "i", "E", r"\sinh x", r"\sin^{-1} x", "2!",
     "(" * 100 + "1" + ")" * 100, "1" * 500, "", "1..2", r"\frac{1}"],
)
def test_unsupported(s):
    with pytest.raises(Unsupported):
        evaluate(s)


def test_flags():
    assert evaluate("x^2 + 1")[1:] == (True, False)
    assert evaluate(r"\sin 2")[1:] == (False, True)
    assert evaluate("3")[1:] == (False, False)


@pytest.mark.parametrize(
    "p, g, expected",
    [
        ("(1,2)", "(1,2)", True),
        ("(1,2)", "[1,2]", False),
        (r"[0,\infty)", r"[0,\infty)", True),
        (r"\{1,2\}", r"\{2,1\}", True),
        (r"\{1,2\}", r"\{1,3\}", False),
        ("3,4", "4,3", True),
        ("3,4", "3,5", False),
        (r"\{1,2\}", "(1,2)", None),  # mixed kinds: math-verify decides
        ("(x,2)", "(x,2)", None),  # not plain numbers
    ],
)
def test_compare_lists(p, g, expected):
    assert _compare_lists(p, g) is expected


# (pred, gold) pairs on which the fast path decides; math-verify must agree (guards against silent drift)
AGREE = [
    ("0.5", r"\frac{1}{2}"), ("3", "2"), (r"\dfrac{3}{4}", "0.75"), (r"2\sqrt{2}", r"\sqrt{8}"), ("0.333", r"\frac13"),
    (r"x^2+2x+1", "(x+1)^2"), (r"x^2+1", "(x+1)^2"), (r"\frac{x+1}{x-1}", r"1+\frac{2}{x-1}"), ("2x", "x+x"),
    ("2x", "3x"), (r"\sin\frac{\pi}{6}", "0.5"), (r"\log_2 8", "3"), ("(1,2)", "(1,2)"), (r"[1,2)", r"[1,2]"),
    (r"\{1,2\}", r"\{2,1\}"), (r"-\frac{1}{2}", "-0.5"), (r"2\pi", r"\pi+\pi"), (r"\sqrt{2}/2", r"\frac{1}{\sqrt{2}}"),
    ("1000", "1,000"), ("4", "x = 4"), ("1024", "2^10"), ("x^{23}", "x^23"),
]


@pytest.mark.parametrize("pred, gold", AGREE)
def test_fast_path_agrees_with_math_verify(pred, gold):
    fast = math_equal(pred, gold)
    slow = _mv_equal(canonical_latex(gold)[0] if "," in gold and "(" not in gold else gold, pred)
    assert fast == slow, (pred, gold, fast, slow)
