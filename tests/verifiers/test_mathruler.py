"""mathruler: equivalence cases from real model outputs, guards, hostile inputs, bounded time."""

from __future__ import annotations

import os
import threading
import time

import pytest

from omni_rl.verifiers import get_verifier
from omni_rl.verifiers.mathruler import canonical_latex, math_equal, precheck

mathruler = get_verifier("mathruler")

T = "<think>Let me work through this step by step. First ... so the result follows.</think>\n"

# (response, gold, expected score)
CASES = [
    # fractions vs decimals vs LaTeX fraction forms
    (T + r"The probability is $\boxed{\frac{1}{2}}$.", "0.5", 1.0),
    (T + r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
    (T + r"\boxed{\dfrac{3}{4}}", "3/4", 1.0),
    (T + r"\boxed{\tfrac34}", "0.75", 1.0),
    (T + r"\boxed{-\frac{1}{2}}", "-0.5", 1.0),
    (T + r"\boxed{0.333}", r"\frac{1}{3}", 0.0),  # too coarse a decimal is not equal
    (T + r"\boxed{0.3333333}", r"\frac{1}{3}", 1.0),  # equal to 1e-6
    # thousands separators, units, percent, degrees, currency
    (T + r"\boxed{1,000,000}", "1000000", 1.0),
    (T + r"\boxed{1{,}250}", "1250", 1.0),
    (T + r"\boxed{12\text{ cm}}", "12", 1.0),
    (T + r"\boxed{12 \mathrm{cm}^2}", "12", 1.0),
    (T + r"\boxed{15 apples}", "15", 1.0),
    (T + r"\boxed{25\%}", "25", 1.0),
    (T + r"\boxed{0.25}", r"25\%", 1.0),
    (T + r"\boxed{30^\circ}", "30", 1.0),
    (T + r"\boxed{45°}", "45", 1.0),
    (T + r"\boxed{\$18.90}", "18.9", 1.0),
    # assignments
    (T + r"\boxed{x = 2}", "2", 1.0),
    (T + r"\boxed{2}", "x=2", 1.0),
    (T + r"\boxed{y = 2x + 1}", "2x+1", 1.0),
    # closed forms and algebraic equivalence
    (T + r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{1}{2}\sqrt{3}", 1.0),
    (T + r"\boxed{2\sqrt{2}}", r"\sqrt{8}", 1.0),
    (T + r"\boxed{2\pi}", "6.283185307", 1.0),
    (T + r"\boxed{x^2 + 2x + 1}", "(x+1)^2", 1.0),
    (T + r"\boxed{\frac{x+1}{x-1}}", r"1 + \frac{2}{x-1}", 1.0),
    (T + r"\boxed{\sin^2 x + \cos^2 x}", "1", 1.0),  # needs sympy (math-verify path)
    (T + r"\boxed{x^2 - 1}", "(x-1)(x+1)", 1.0),
    (T + r"\boxed{x^2 + 1}", "(x+1)^2", 0.0),
    # intervals and sets
    (T + r"\boxed{[1, 2)}", "[1,2)", 1.0),
    (T + r"\boxed{(1, 2]}", "[1,2)", 0.0),
    (T + r"\boxed{(-\infty, 3)}", r"(-\infty,3)", 1.0),
    (T + r"\boxed{x < 3}", r"(-\infty, 3)", 1.0),
    (T + r"\boxed{\{1, 2\}}", r"\{2, 1\}", 1.0),
    (T + r"\boxed{3, 4}", "4, 3", 1.0),
    # answers without a box
    (T + "So the final answer is 42.", "42", 1.0),
    (T + "Answer: 7", "7", 1.0),
    # wrong / empty
    (T + r"\boxed{3}", "2", 0.0),
    (T + "I am not sure.", "2", 0.0),
    ("<think>never finished", "2", 0.0),
]


@pytest.mark.parametrize("response, gold, expected", CASES)
def test_cases(response, gold, expected):
    assert mathruler(response, gold) == expected


def test_alternatives_and_numeric_gold():
    assert mathruler(r"\boxed{0.5}", ["1/3", "1/2"]) == 1.0
    assert mathruler(r"\boxed{3}", 3) == 1.0
    assert mathruler(r"\boxed{0.1}", 0.1) == 1.0


def test_canonical_latex():
    assert canonical_latex(r"\left( 1, 2 \right)") == ("(1,2)", False)
    assert canonical_latex(r"50\%") == ("50", True)
    assert canonical_latex(r"x = \dfrac{1}{2}") == (r"\frac{1}{2}", False)


@pytest.mark.parametrize(
    "s, reason",
    [
        (r"9^{9^{9^{9^9}}}", "numeric power tower"),
        (r"2^{100000}", "exponent too large"),
        (r"(10^5)!", "factorial too large"),
        (r"100000!", "factorial too large"),
        (r"\sum_{k=1}^{n} k", "sums/products/integrals/limits are not evaluated"),
        ("(" * 30 + "1" + ")" * 30, "nesting too deep"),
        ("1" * 600, "number literal too long"),
        ("x+" * 600, "too long"),
        ("__import__('os')", "code-like text"),
        (r"\binom{100000}{50000}", "binomial too large"),
    ],
)
def test_precheck_rejects(s, reason):
    assert precheck(s) == reason


@pytest.mark.parametrize("s", [r"\frac{\sqrt{3}}{2}", r"e^{-x^2}", r"2^{2^n}", r"\lambda + 1", r"10^{100}", "5!", "n!"])
def test_precheck_allows(s):
    assert precheck(s) is None


PAYLOADS = [
    r"\boxed{__import__('os').system('touch {flag}')}",
    r"\boxed{eval(\"__import__('os').system('touch {flag}')\")}",
    r"\boxed{exec(\"open('{flag}','w')\")}",
    r"\boxed{(lambda: __import__('os').system('touch {flag}'))()}",
    r"\boxed{().__class__.__base__.__subclasses__()}",
    r"\boxed{\text{__import__('os').system('touch {flag}')}}",
    r"The answer is __import__('os').system('touch {flag}')",
    r"\boxed{getattr(__builtins__, 'exec')('open(\"{flag}\", \"w\")')}",
    r"\boxed{$(touch {flag})}",
    r"\boxed{1; import os; os.system('touch {flag}')}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_code_execution(payload, tmp_path):
    flag = tmp_path / "pwned_X"
    response = payload.replace("{flag}", str(flag))
    for gold in ("0", "1", r"\frac{1}{2}", "x"):
        assert mathruler(response, gold) == 0.0  # returns 0.0, does not raise
    assert not flag.exists()
    assert not os.path.exists("/tmp/pwned_X")


def test_power_tower_returns_fast():
    # hang detection, not a performance threshold: without the guards this never returns
    t0 = time.monotonic()
    assert mathruler(r"\boxed{9^{9^{9^{9^9}}}}", "1") == 0.0
    assert mathruler(r"\boxed{9^{9^{9^{9^9}}}}", r"9^{9^{9^{9^9}}}") == 1.0  # identical text needs no evaluation
    assert mathruler(r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", "2") == 0.0
    assert time.monotonic() - t0 < 10


def test_works_off_the_main_thread():
    # math-verify's own signal.alarm timeout raises off the main thread; ours is disabled there
    out = {}

    def run():
        out["a"] = mathruler(r"\boxed{\sin^2 x + \cos^2 x}", "1")
        out["b"] = mathruler(r"\boxed{9^{9^{9^{9^9}}}}", "1")

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert out == {"a": 1.0, "b": 0.0}


def test_math_equal_guard_does_not_clobber_existing_timer():
    import signal

    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        pytest.skip("an interval timer is already armed (e.g. pytest-timeout's signal method)")
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        assert math_equal(r"\sin^2 x + \cos^2 x", "1")
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 0 < remaining <= 30.0  # the caller's timer is still armed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sympy_path_itself_does_not_execute(payload, tmp_path):
    # defence in depth: even with the code-like-text guard bypassed, the LaTeX parser never evaluates Python
    from omni_rl.verifiers.extract import extract_answer
    from omni_rl.verifiers.mathruler import _mv_equal

    flag = tmp_path / "pwned_Y"
    pred = extract_answer(payload.replace("{flag}", str(flag))) or ""
    assert _mv_equal("1", pred) is False
    assert not flag.exists()


def test_main_thread_deadline_bounds_an_unknown_slow_path(monkeypatch):
    # an input the guards do not know about that keeps sympy busy: simulated by a busy loop in the math-verify step
    import signal

    from omni_rl.verifiers import mathruler as mr

    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        pytest.skip("an interval timer is already armed (e.g. pytest-timeout's signal method)")

    def busy(gold, pred):
        while True:
            pass

    monkeypatch.setattr(mr, "_mv_equal", busy)
    handler_before = signal.getsignal(signal.SIGALRM)
    t0 = time.monotonic()
    assert mr.math_equal(r"\sin^2 x", r"\begin{pmatrix}1\\2\end{pmatrix}", timeout_s=0.3) is False
    assert time.monotonic() - t0 < 10  # hang detection: without the deadline this never returns
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # timer disarmed
    assert signal.getsignal(signal.SIGALRM) == handler_before  # handler restored
