"""mathruler by answer family (numbers, relations, matrices, display/plain answers, worked solutions), the final-answer
extraction behind it, and bounded time on hostile input for the new scans."""

from __future__ import annotations

import time

import pytest

from mathruler_families import FAMILIES
from omni_rl.verifiers import get_verifier
from omni_rl.verifiers import mathruler as mr
from omni_rl.verifiers.math_answer import as_plain_number, final_math_answer, is_prose
from omni_rl.verifiers.mathruler import canonical_latex, normalize_relations

mathruler = get_verifier("mathruler")

CASES = [(fam, g, r, e) for fam, cases in FAMILIES.items() for g, r, e in cases]


@pytest.mark.parametrize("family, gold, response, expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_family_cases(family, gold, response, expected):
    assert mathruler(response, gold) == float(expected)


def test_every_family_has_positives_and_negatives():
    for fam, cases in FAMILIES.items():
        labels = [e for _, _, e in cases]
        assert len(cases) >= 8 and 0 in labels and 1 in labels, fam


@pytest.mark.parametrize(
    "response, answer",
    [
        ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5"),
        ("the number is not 10 which is 1,000.99€", "1000.99"),
        ("Soucis : 2,74 $ a..", "2.74"),
        ("0,111", "0.111"),
        ("Answer \\[ \n 9 \n \\]", "9"),
        ("The largest $n$ is 34.", "34"),
        ("Expanding gives\nx^2+1", "x^2+1"),
        ("costs $5 and then $10.", "10"),
        ("The answer is 25%.", "25\\%"),
        ("The final answer is $14{,}916$. I hope it is correct. Note: check 3 and 4.", "14{,}916"),
        ("\\boxed{3} and \\boxed{4}", "3, 4"),
        ("$y_1 = \\boxed{2}$ and $y_2 = \\boxed{3}$", "2, 3"),
        ("\\boxed{5} \\boxed{5}", "5"),
        ("$$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$$", "(3, 3), (1, 1)"),
        ("\\boxed{2}. Then we also get \\boxed{3}", "3"),
        ("\\boxed{200} and later \\boxed{255}.\nFinal Answer: The final answer is $10,455$.", "10,455"),
        ("\\boxed{7}. The final answer is in the box above.", "7"),
        ("no solution", "no solution"),
        ("<think>the answer is \\boxed{2}", None),
    ],
)
def test_final_math_answer(response, answer):
    assert final_math_answer(response) == answer


def test_plain_numbers_and_prose():
    assert as_plain_number("1,234") == "1234"  # thousands
    assert as_plain_number("1000,99") == "1000.99"  # decimal comma
    assert as_plain_number("-$1,000.5") == "-1000.5"
    assert as_plain_number("x + 1") == "x + 1"
    assert is_prose("so the answer is") and not is_prose("x = 2 and y = 3") and not is_prose("\\text{Evelyn}")


def test_relations_have_one_spelling():
    for s in ("x >= 5", "x \\ge 5", "x ≥ 5", "x \\geqslant 5", "x ⩾ 5"):
        assert canonical_latex(s)[0] == "x\\geq5", s
    assert normalize_relations("x \\ne 3, y \\lt 2, z \\le 1") == "x \\neq  3, y < 2, z \\leq  1"
    assert normalize_relations("\\left( \\neg p \\right)") == "\\left( \\neg p \\right)"  # \\left, \\neg untouched


def test_canonical_keeps_matrix_rows():
    assert canonical_latex("\\begin{pmatrix}1 \\\\ 2\\end{pmatrix}")[0] == "\\begin{pmatrix}1\\\\2\\end{pmatrix}"
    assert canonical_latex("12{,}5")[0] == "12.5"  # a braced comma between digits is a decimal comma
    assert canonical_latex("11,\\!111,\\!100")[0] == "11111100"
    assert canonical_latex("0,111")[0] == "0,111"  # not thousands (leading 0): a list in LaTeX


def test_numeric_matrices_never_reach_math_verify(monkeypatch):
    def boom(gold, pred):
        raise AssertionError("math-verify called")

    monkeypatch.setattr(mr, "_mv_equal", boom)
    assert mr.math_equal("\\begin{bmatrix}0.5\\\\3\\end{bmatrix}", "\\begin{pmatrix}\\frac12\\\\3\\end{pmatrix}")
    assert not mr.math_equal("\\begin{bmatrix}0.5 & 3\\end{bmatrix}", "\\begin{pmatrix}\\frac12\\\\3\\end{pmatrix}")
    assert not mr.math_equal("\\begin{bmatrix}1 & 4\\end{bmatrix}", "\\begin{pmatrix}1 & 3\\end{pmatrix}")


def test_gold_forms():
    assert mathruler("\\boxed{1.22}", "1,22") == 1.0  # a plain-number gold with a decimal comma
    assert mathruler("\\boxed{1, 22}", "1,22") == 1.0  # ... or a list
    assert mathruler("\\boxed{5}", "So the area is $\\boxed{5}$.") == 1.0  # a gold solution: its box
    assert mathruler("\\boxed{2, 3}", "$a = \\boxed{2}$, and then $b = \\boxed{3}$") == 1.0  # all boxes of a gold
    assert mathruler("\\boxed{6}", "Since $a = 2$ and $b = 3$, the product is $6$.") == 1.0  # ... or its last span


HOSTILE = [
    "$" * 200_000,
    "$a" * 100_000,
    "\\(" * 100_000 + "9",
    "1," * 100_000 + "5",
    "1 " * 100_000,
    "9" * 200_000,
    "\\boxed{1} and " * 20_000,
    "answer: " + "$x$ " * 50_000,
]


@pytest.mark.parametrize("response", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_responses_return_fast(response):
    # hang detection, not a performance threshold: a quadratic scan takes minutes here
    t0 = time.monotonic()
    assert mathruler(response, "2") in (0.0, 1.0)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    "response",
    [
        "So the answer is $__import__('os').system('touch {flag}')$.",
        "The result is \\[ eval(\"open('{flag}', 'w')\") \\]",
        "Final answer: exec(\"open('{flag}','w')\") and 1,000",
    ],
)
def test_no_code_execution_in_fallbacks(response, tmp_path):
    flag = tmp_path / "pwned"
    for gold in ("0", "1000", "x"):
        mathruler(response.replace("{flag}", str(flag)), gold)
    assert not flag.exists()
