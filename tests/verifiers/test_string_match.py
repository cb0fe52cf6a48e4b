"""string-match: normalisation cases from real VQA/OCR outputs, lists (abstention: test_abstention.py)."""

from __future__ import annotations

import pytest

from omni_rl.verifiers import get_verifier
from omni_rl.verifiers.normalize import normalize_text

sm = get_verifier("string-match")
T = "<think>The sign in the image reads ... so the answer should be as follows.</think>\n"

CASES = [
    (T + r"\boxed{The Eiffel Tower}", "eiffel tower", {}, 1.0),  # case + article
    (T + r"\boxed{\text{Eiffel Tower}}", "Eiffel Tower", {}, 1.0),  # LaTeX text wrapper
    (T + r"\boxed{\mathrm{STOP}}", "stop", {}, 1.0),
    (T + "\\boxed{\u201cCoca-Cola\u201d}", "coca cola", {}, 1.0),  # curly quotes, hyphen
    (T + r"\boxed{'yes'}", "Yes", {}, 1.0),
    (T + r"\boxed{3.0}", "3", {}, 1.0),  # numeric equality
    (T + r"\boxed{3.50}", "3.5", {}, 1.0),
    (T + r"\boxed{1,250}", "1250", {}, 1.0),  # thousands separator
    (T + r"\boxed{12,000,000 people}", "12000000 people", {}, 1.0),
    (T + r"\boxed{three}", "3", {}, 1.0),  # number word
    (T + r"\boxed{red, green and blue}", "blue; green; red", {}, 1.0),  # list separators, any order
    (T + r"\boxed{a;b}", "a, b", {}, 1.0),
    (T + r"\boxed{b, a}", "a, b", {"ordered": True}, 0.0),
    (T + r"\boxed{U.S.A.}", "USA", {}, 1.0),
    (T + "The answer is Paris.", "paris", {}, 1.0),  # fallback extraction
    (T + "Answer: **New York**", "new york", {}, 1.0),
    (T + r"\boxed{Paris}", "London", {}, 0.0),
    (T + r"\boxed{Paris, France}", "Paris", {}, 0.0),
    (T + r"\boxed{12}", ["twelve", "dozen"], {}, 1.0),  # list of acceptable answers
    (T + r"\boxed{1 2}", "12", {}, 0.0),  # tokens are not glued together when digits are involved
    (T + r"\boxed{}", "x", {}, 0.0),
]


@pytest.mark.parametrize("response, gold, kwargs, expected", CASES)
def test_cases(response, gold, kwargs, expected):
    assert sm(response, gold, **kwargs) == expected


def test_normalize_text():
    assert normalize_text("The  Cat's hat.") == "cats hat"
    assert normalize_text("-3.50") == "-3.5"
    assert normalize_text("1/2") == "0.5"
    assert normalize_text("a") == "a"  # a lone article is kept (option a, "U.S.A.")
