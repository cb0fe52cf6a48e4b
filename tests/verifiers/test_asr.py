"""asr: 1 - WER after the Whisper English normaliser."""

from __future__ import annotations

import pytest

from omni_rl.verifiers import get_verifier

asr = get_verifier("asr")

CASES = [
    ("twenty dollars", "$20", 1.0),  # spelled-out currency
    ("It costs $20.", "it costs twenty dollars", 1.0),
    ("I'm going home", "I am going home", 1.0),  # contractions
    ("we won't stop", "we will not stop", 1.0),
    ("The colour of the centre", "the color of the center", 1.0),  # British vs American spelling
    ("Hello, world!", "hello world", 1.0),  # punctuation and case
    ("  hello   world  ", "Hello world.", 1.0),
    ("the cat sat", "the cat sat on the mat", 0.5),  # 3 deletions / 6 words
    ("the dog sat on the mat", "the cat sat on the mat", 1 - 1 / 6),  # 1 substitution
    ("completely different words here now", "the cat sat", 0.0),  # WER > 1 clamps to 0
    ("", "", 1.0),  # empty reference, empty hypothesis
    ("uh", "", 1.0),  # fillers are removed by the normaliser: still empty
    ("something", "", 0.0),  # empty reference, non-empty hypothesis
    ("", "hello world", 0.0),
    ("<think>The speaker says hello.</think>Transcript: \"Hello world.\"", "hello world", 1.0),
    (r"<think>x</think>\boxed{hello world}", "hello world", 1.0),
]


@pytest.mark.parametrize("hyp, ref, expected", CASES)
def test_cases(hyp, ref, expected):
    assert asr(hyp, ref) == pytest.approx(expected, abs=1e-9)


def test_reference_must_be_text():
    with pytest.raises(TypeError):
        asr("hello", ["hello"])
