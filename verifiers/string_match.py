"""``string-match``: normalised text equality of the final answer with the ground truth.

Spec (RECIPE "Verifier semantics"): normalised text equality (quotes, punctuation, case, LaTeX text commands,
thousands separators, floats, list separators). Concretely, prediction and answer are equal when any of:

* ``normalize_text`` forms are equal: NFKC, ``\\text{}``/``\\mathrm{}``/``\\textbf{}`` unwrapped, ``$`` removed, lower
  case, quotes/punctuation dropped, articles dropped (``the Eiffel Tower`` = ``Eiffel tower``), thousands separators
  removed (``1,000`` = ``1000``), numbers canonical (``3.0`` = ``3``, ``0.50`` = ``.5`` = ``1/2``), number words up to
  twenty (``three`` = ``3``);
* both are lists (separators ``,`` ``;`` ``and`` ``&``) with equal normalised items. Order does not matter by default
  (``red and blue`` = ``blue, red``); ``ordered=True`` makes it matter;
* neither contains a digit and they are equal with spaces removed (``U.S.A.`` = ``USA``).

The answer may be a list of acceptable alternatives (VQA style): any one matching scores 1. A list-valued answer
meaning "all of these" should be written as one string (``"red, blue"``).

Abstention (unanswerable / image-text-mismatch prompts): when ``unanswerable=True`` is passed, or the answer itself
is an abstention marker (``unanswerable``, ``none of the above``, ``cannot be determined``, ...), the response scores 1
if its final answer (the last box, else the whole text after the reasoning) is an abstention phrasing
(``cannot be determined``, ``not enough information``, ``the image does not show ...``, ``unanswerable``, ...).

Unknown keyword arguments are ignored (data rows may carry fields meant for other verifiers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .extract import clean_answer, extract_answer, last_boxed, strip_reasoning
from .normalize import normalize_text, parse_number, split_list

__all__ = ["string_match", "strings_match", "is_abstention", "ABSTENTION_ANSWERS"]

# normalised gold answers that mean "the prompt cannot be answered"
ABSTENTION_ANSWERS = frozenset(
    normalize_text(s, drop_articles=False)
    for s in (
        "unanswerable", "not answerable", "none of the above", "none of these", "none of the options",
        "cannot be determined", "can not be determined", "cannot determine", "cannot be answered", "cannot answer",
        "not enough information", "insufficient information", "not enough info", "unknown", "n/a",
        "no answer", "no correct answer", "impossible to determine", "not determinable", "unable to determine",
        "image text mismatch", "mismatch", "not applicable",
    )
)

# phrasings of abstention in a response (applied to normalize_text(..., drop_articles=False) output: lower case,
# apostrophes removed, punctuation -> space)
_ABSTAIN_RE = re.compile(
    r"\b(?:"
    r"(?:cannot|can not|cant|could not|couldnt|unable to|impossible to|not possible to|no way to|hard to|difficult to)"
    r" (?:be )?(?:reliably |accurately |definitively |confidently )?"
    r"(?:determine|determined|answer|answered|tell|told|know|known|infer|inferred|identify|identified|say|conclude|"
    r"ascertain|verify|verified|see|read|find|compute|calculate)"
    r"|(?:not|no|insufficient|inadequate|lacking|lack of|missing) (?:enough |sufficient |adequate )?"
    r"(?:information|info|context|data|details|evidence|visual information|clues)"
    r"|un ?answerable|not answerable|none of (?:above|these|options|choices|answers)"
    r"|no (?:correct|valid|right) (?:answer|option|choice)"
    r"|(?:image|picture|photo|photograph|video|audio|clip|figure|chart|graph|diagram|table|document|screenshot|"
    r"recording|question|text|context|scene)s? (?:does not|doesnt|do not|dont|did not|didnt|cannot|cant|is not|isnt|"
    r"are not|arent) (?:clearly )?(?:show|contain|include|depict|provide|mention|display|have|give|match|correspond|"
    r"specify|indicate|visible|shown|present|relate|describe)"
    r"|not (?:visible|shown|depicted|mentioned|provided|specified|present|given|stated|indicated) (?:in|on|by)"
    r"|(?:is|are) (?:not|no) (?:\w+ ){0,3}(?:visible|shown|depicted|present) (?:in|on)"
    r"|(?:does not|doesnt|do not|dont) match"
    r"|mismatch"
    r"|i (?:dont|do not) know"
    r"|unknown"
    r")\b"
)

_DIGIT_RE = re.compile(r"\d")


def is_abstention(text: str) -> bool:
    """True if ``text`` reads as "this cannot be answered" (see module docstring)."""
    if not text:
        return False
    t = normalize_text(text[:4000], drop_articles=False, number_words=False)
    return t in ABSTENTION_ANSWERS or _ABSTAIN_RE.search(t) is not None


def _items(s: str) -> list[str]:
    return [normalize_text(p) for p in split_list(s)]


def strings_match(pred: str, gold: str, *, ordered: bool = False) -> bool:
    """Normalised equality of two answer strings (module docstring)."""
    p, g = normalize_text(pred), normalize_text(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    if " " not in p and " " not in g:
        pv, gv = parse_number(p), parse_number(g)
        if pv is not None and gv is not None:
            return pv == gv
    pi, gi = _items(pred), _items(gold)
    if (len(pi) > 1 or len(gi) > 1) and len(pi) == len(gi) and all(pi) and all(gi):
        if (pi == gi) if ordered else (sorted(pi) == sorted(gi)):
            return True
    if not _DIGIT_RE.search(p) and not _DIGIT_RE.search(g):
        return p.replace(" ", "") == g.replace(" ", "")
    return False


def _alternatives(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, bool):
        return ["yes" if answer else "no", str(answer)]
    if isinstance(answer, (int, float)):
        return [repr(answer) if isinstance(answer, float) else str(answer)]
    if isinstance(answer, dict):
        raise TypeError("string-match answer must be a string, a number or a list of acceptable strings, not a dict")
    if isinstance(answer, Iterable):
        out: list[str] = []
        for a in answer:
            out.extend(_alternatives(a))
        return out
    return [str(answer)]


def string_match(response: str, answer: Any, *, unanswerable: bool = False, ordered: bool = False,
                 **_: Any) -> float:
    """1.0 if the response's final answer equals ``answer`` after normalisation, else 0.0 (module docstring)."""
    golds = [g for g in _alternatives(answer) if g is not None]
    abstain_gold = unanswerable or any(normalize_text(g, drop_articles=False) in ABSTENTION_ANSWERS for g in golds)
    if abstain_gold:
        region = strip_reasoning(response)
        boxed = last_boxed(region)
        final = boxed if boxed is not None else region
        if is_abstention(final) or any(strings_match(clean_answer(final), g) for g in golds if g):
            return 1.0
        return 0.0
    pred = extract_answer(response)
    if not pred:
        return 0.0
    return 1.0 if any(strings_match(pred, g, ordered=ordered) for g in golds if g) else 0.0
