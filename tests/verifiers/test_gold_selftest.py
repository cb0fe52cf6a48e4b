"""Gold self-test for every built-in verifier: gold scores 1.0, garbage 0.0, hostile input never raises."""

from __future__ import annotations

import pytest

from omni_rl.verifiers import BUILTIN_VERIFIERS, get_verifier, reward

T = "<think>Reasoning about the question for a while.</think>\n"

# name -> (kwargs, answer, gold response, garbage response)
GOLD = {
    "string-match": ({}, "Golden Gate Bridge", T + r"\boxed{the golden gate bridge}", T + r"\boxed{Big Ben}"),
    "mathruler": ({}, r"\frac{3}{4}", T + r"\boxed{0.75}", T + r"\boxed{banana}"),
    "multiple-choice": ({"options": ["cat", "dog", "cow"]}, "C", T + r"\boxed{C}", T + r"\boxed{}"),
    "gui-coordinate": ({}, [100, 200, 300, 400], T + r"\boxed{<point>[(200,300)]</point>}", T + "no coordinates"),
    "asr": ({}, "the quick brown fox", T + r"\boxed{The quick brown fox.}", T + "lorem ipsum dolor sit amet ok ok"),
    "format": ({}, None, T + r"\boxed{anything}", "no tags, no box"),
}


def test_every_builtin_has_a_gold_test():
    assert set(GOLD) == set(BUILTIN_VERIFIERS)


@pytest.mark.parametrize("name", sorted(GOLD))
def test_gold_and_garbage(name):
    kwargs, answer, gold, garbage = GOLD[name]
    fn = get_verifier(name)
    assert fn(gold, answer, **kwargs) == 1.0
    assert fn(garbage, answer, **kwargs) == 0.0
    # through the combinator: the gold response is perfectly formatted
    assert reward(gold, name, answer, **kwargs).reward == pytest.approx(1.0)


HOSTILE = [
    "",
    " ",
    "\x00\x01\x02",
    "</think>" * 1000,
    "<think>" * 1000,
    r"\boxed{" * 5000,
    "}" * 5000 + r"\boxed{}",
    r"\boxed{\boxed{\boxed{}}}",
    "{" * 10_000,
    "(" * 10_000 + "1" + ")" * 10_000,
    r"\boxed{" + "(" * 500 + "1" + ")" * 500 + "}",
    r"\boxed{9^{9^{9^{9^9}}}}",
    r"\boxed{10^{10^{10}}}",
    r"\boxed{(10^{100})!}",
    r"\boxed{\int_0^\infty e^{-x^2} dx}",
    r"\boxed{\frac{1}{0}}",
    r"\boxed{0^{-1}}",
    r"\boxed{nan}",
    r"\boxed{inf}",
    "\\boxed{" + "x" * 100_000 + "}",
    "a" * 500_000,
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e\u200b ﷽ \ud7ff",
    "<point>[(nan, inf)]</point>",
    "<point>[(1e308, -1e308)]</point>",
    "click(x=" + "9" * 400 + ", y=1)",
    '{"x": "a", "y": null}',
    r"\boxed{__import__('os').system('echo pwned')}",
    "A" * 1000,
    "(A) (B) (C) (D)",
    "answer: " * 10_000,
]


@pytest.mark.parametrize("name", sorted(GOLD))
def test_hostile_inputs_never_raise(name):
    kwargs, answer, _, _ = GOLD[name]
    fn = get_verifier(name)
    for h in HOSTILE:
        for resp in (h, T + h):
            s = fn(resp, answer, **kwargs)
            assert isinstance(s, float) and 0.0 <= s <= 1.0, (name, resp[:80], s)
