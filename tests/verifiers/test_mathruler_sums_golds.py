"""mathruler on sums / products (evaluated with literal bounds, compared by their parts with symbolic bounds, never
handed to sympy) and on the boxed answer of a gold (trailing run of boxes, unclosed last box)."""

from __future__ import annotations

import threading
import time

import pytest

from omni_rl.verifiers import get_verifier
from omni_rl.verifiers import mathruler as mr
from omni_rl.verifiers.extract import open_box_tail
from omni_rl.verifiers.latex_eval import MAX_TERMS, Unsupported, evaluate
from omni_rl.verifiers.math_answer import final_math_answer, gold_box_answer
from omni_rl.verifiers.mathruler import canonical_latex, math_equal

mathruler = get_verifier("mathruler")


# --- the numeric evaluator -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "s, value",
    [
        (r"\sum_{i=1}^{10} i", 55),
        (r"\sum_{k=1}^{3} k + 1", 7),  # the summand is one multiplicative term
        (r"\sum_{k=1}^{3} k \cdot 2", 12),
        (r"\sum_{k=1}^{3} (k + 1)", 9),
        (r"2\sum_{k=1}^{3} k", 12),
        (r"\sum_{k=-2}^{2} k^2", 10),
        (r"\prod_{k=1}^{5} k", 120),
        (r"\prod^{4}_{k=1} k", 24),  # limits in either order
        (r"\sum\limits_{k=1}^9 k", 45),
        (r"\sum_{n=1}^{3} \sum_{m=1}^{2} nm", 18),
        (r"\sum_{k=1}^{1000} k^2", 333_833_500),  # MAX_TERMS terms
        (r"\sum_{j=0}^{4} \frac{1}{2^j}", 1.9375),
    ],
)
def test_sum_values(s, value):
    assert evaluate(s).value == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    "s",
    [
        r"\sum_{k=1}^{n} k",  # symbolic bound
        r"\sum_{i=1}^{10^{9}} i",  # computed bound
        rf"\sum_{{k=1}}^{{{MAX_TERMS + 1}}} k",  # too many terms
        r"\sum_{k=1}^{1000000000} k",
        r"\sum_{k=5}^{3} k",  # empty range (sympy reads it with the Karr convention)
        r"\sum_{k=1}^10 k",  # unbraced two-digit bound: ambiguous
        r"\sum_{e=1}^{3} e",  # e is Euler's number
        r"\sum_{k=1}^{3} i",  # i is not the index
        r"\sum_{k=1}^{3}",
        r"\prod_{k=1}^{200} k",  # overflows
        r"\sum_{i=1}^{1000}\sum_{j=1}^{1000} ij",  # nested: over the step budget
        r"\sum_{i=1}^{999}\sum_{j=1}^{999}\sum_{l=1}^{999} ijl",
    ],
)
def test_sum_unsupported(s):
    t0 = time.monotonic()
    with pytest.raises(Unsupported):
        evaluate(s)
    assert time.monotonic() - t0 < 5  # hang detection


def test_index_is_bound_not_a_variable():
    assert evaluate(r"\sum_{k=1}^{3} k").used_vars is False
    assert evaluate(r"\sum_{k=1}^{3} x^k").used_vars is True


def test_sum_index_is_not_an_assignment():
    assert canonical_latex(r"\sum_{i=1}^{10} i")[0] == r"\sum_{i=1}^{10}i"
    assert canonical_latex(r"x_{1} = 3")[0] == "3" and canonical_latex(r"a_12 = 3")[0] == "3"
    assert not math_equal(r"\sum_{k=1}^{10} i", r"\sum_{i=1}^{10} i")


# --- symbolic bounds: same limits, equivalent summands ----------------------------------------------------------------
@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        (r"\sum_{k=0}^{n-1} a_{n-k} b_k", r"\sum_{k=0}^{n - 1} b_k a_{n-k}", True),
        (r"T = \prod_{j=1}^{m} \frac{j}{j+1}", r"\prod_{j=1}^{m} \frac{j}{1+j}", True),  # an assignment prefix
        (r"\sum^{n}_{k=1} \frac{1}{k}", r"\sum_{k=1}^{n} \frac{1}{k}", True),
        (r"\sum_{k=1}^{n} \frac{1}{k}", r"\sum_{k=1}^{n} \frac{1}{k^2}", False),
        (r"\sum_{k=1}^{n} k", r"\sum_{j=1}^{n} j", False),  # renamed index: not decided, scored 0
        (r"\sum_{k=1}^{n} k", r"\frac{n(n+1)}{2}", False),  # a closed form: sums are not evaluated symbolically
        (r"\sum_{k=1}^{n} k + 1", r"\sum_{k=1}^{n} 1 + k", False),  # not one term: the extent is ambiguous
        (r"\sum_{k=1}^{n} 3 \cdot 2m", r"\sum_{k=1}^{n} 6", False),  # a summand is compared as written (no units)
        (r"\sum_{k=1}^{n} a_k = 5", r"\sum_{k=1}^{n} 5", False),  # relations are not summands
        (r"2\sum_{k=1}^{n} k", r"3\sum_{k=1}^{n} k", False),
        (r"\left(\sum_{k=1}^{n} k\right)^2", r"\left(\sum_{k=1}^{n} k\right)^3", False),  # not the whole answer
    ],
)
def test_symbolic_sums(pred, gold, expected):
    assert math_equal(pred, gold) is expected


def test_same_limits_rule_is_never_false():
    assert mr._compare_big_ops(r"\sum_{k=1}^{n} k", r"\sum_{k=1}^{n} (n + 1 - k)", None) is None  # equal sums
    assert mr._compare_big_ops(r"\sum_{k=1}^{n} k", r"\sum_{k=1}^{n} k^2", None) is None
    assert mr._compare_big_ops(r"\sum_{k=1}^{n} 2k", r"\sum_{k=1}^{n} k \cdot 2", None) is True


HOSTILE_SUMS = [
    (r"\boxed{\sum_{i=1}^{10^{9}} i}", "500000000500000000"),
    (r"\boxed{\sum_{i=1}^{1000000000} i}", "500000000500000000"),
    (r"\boxed{\prod_{k=1}^{n} k}", "n!"),
    (r"\boxed{\prod_{k=1}^{10^{6}} k}", r"10^{6}!"),
    (r"\boxed{\sum_{i=1}^{1000}\sum_{j=1}^{1000} ij}", "250500250000"),
    (r"\boxed{\sum_{k=1}^{n}\sum_{j=1}^{k}\sum_{i=1}^{j} ijk}", r"\sum_{k=1}^{n}\sum_{j=1}^{k}\sum_{i=1}^{j} kji"),
    (r"\boxed{\sum_{a=1}^{n}\sum_{b=1}^{a}\sum_{c=1}^{b}\sum_{d=1}^{c}\sum_{f=1}^{d} f}", "n^5"),
    (r"\boxed{\sum_{k=1}^{10^{9}} \sin(k^{k})}", r"\sum_{k=1}^{10^{9}} \sin k^{k}"),
    (r"\boxed{" + ", ".join([r"\sum_{i=1}^{999}\sum_{j=1}^{999} ij"] * 40) + "}", ", ".join(["1"] * 40)),
    (r"\boxed{\begin{pmatrix}" + r"\\".join([r"\sum_{i=1}^{999}\sum_{j=1}^{999} ij"] * 60) + r"\end{pmatrix}}",
     r"\begin{pmatrix}" + r"\\".join(["1"] * 60) + r"\end{pmatrix}"),
    (r"\boxed{\sum_{k=1}^{\sum_{j=1}^{\sum_{i=1}^{n} i} j} k}", r"\sum_{k=1}^{n} k"),
]


def _score_hostile_sums(out: dict) -> None:
    out["scores"] = [mathruler(r, g) for r, g in HOSTILE_SUMS]


def test_hostile_sums_return_fast_and_never_reach_sympy(monkeypatch):
    seen = []
    real = mr._mv_equal

    def spy(gold, pred):
        seen.append(gold + pred)
        return real(gold, pred)

    monkeypatch.setattr(mr, "_mv_equal", spy)
    out: dict = {}
    t0 = time.monotonic()
    _score_hostile_sums(out)
    assert time.monotonic() - t0 < 30  # hang detection, not a performance threshold
    assert out["scores"][:5] == [0.0] * 5 and out["scores"][6] == 0.0 and out["scores"][8:] == [0.0] * 3
    assert out["scores"][5] == 1.0 and out["scores"][7] == 1.0  # same limits, equivalent summands
    assert not any("\\sum" in s or "\\prod" in s for s in seen)


def test_hostile_sums_off_the_main_thread():
    # no SIGALRM deadline off the main thread: only the guards and the step budget bound the work
    out: dict = {}
    t = threading.Thread(target=_score_hostile_sums, args=(out,))
    t.start()
    t.join(60)
    assert not t.is_alive() and len(out["scores"]) == len(HOSTILE_SUMS)


def test_too_many_sums_in_a_prediction():
    many = " + ".join([r"\sum_{k=1}^{3} k"] * (mr.MAX_BIG_OPS + 1))
    assert not math_equal(many, str(6 * (mr.MAX_BIG_OPS + 1)))
    assert math_equal(many, many)  # identical text needs no evaluation
    assert math_equal(" + ".join([r"\sum_{k=1}^{3} k"] * mr.MAX_BIG_OPS), str(6 * mr.MAX_BIG_OPS))


# --- the boxed answer of a gold ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, tail",
    [
        (r"The area is \boxed{\frac{1}{2}", r"\frac{1}{2}"),
        (r"\boxed{a {b}", "a {b}"),
        (r"\boxed{1} and \boxed{2", "2"),
        (r"\fbox{ 7 ", "7"),
        (r"\boxed{2 then \boxed{1}", None),  # the last box is closed
        (r"\boxed{5}", None),
        (r"\boxed{", None),
        ("no box", None),
        (r"\boxed 5", None),
    ],
)
def test_open_box_tail(text, tail):
    assert open_box_tail(text) == tail


@pytest.mark.parametrize(
    "gold, answer",
    [
        (r"\boxed{3} cats or \boxed{4} dogs", "3, 4"),  # a separator within 70 characters
        (r"\boxed{3}\quad\boxed{4}", "3, 4"),  # under 10 characters apart
        (r"\boxed{3} first then second \boxed{4}", "4"),  # words, no separator
        (r"\boxed{3}, " + "so " * 30 + r"\boxed{4}", "4"),  # too far apart
        (r"\boxed{4}, so again, \boxed{4}", "4"),
        (r"\boxed{1}, \boxed{2}, \boxed{3}, \boxed{4}, \boxed{5}, \boxed{6}, \boxed{7}, \boxed{8}, \boxed{9}",
         "1, 2, 3, 4, 5, 6, 7, 8, 9"),
        (r"$x = \boxed{-1", "-1"),
        ("no box here", None),
    ],
)
def test_gold_box_answer(gold, answer):
    assert gold_box_answer(gold) == answer


def test_unclosed_box_is_read_in_golds_only():
    assert mathruler(r"\boxed{0.5}", r"The probability is \boxed{\dfrac{1}{2}") == 1.0
    assert mathruler(r"\boxed{0.4}", r"The probability is \boxed{\dfrac{1}{2}") == 0.0
    # a response cut off inside its box has no final answer in it
    assert final_math_answer(r"So the answer is \boxed{5") != "5"
    assert mathruler(r"So the answer is \boxed{5", "5") == 0.0


@pytest.mark.parametrize("gold", ["\\boxed{" * 50_000, "\\boxed{1} , " * 20_000, "\\boxed{1" + "}" * 100_000])
def test_hostile_golds_return_fast(gold):
    t0 = time.monotonic()
    assert mathruler(r"\boxed{1}", gold) in (0.0, 1.0)
    assert time.monotonic() - t0 < 10  # hang detection
