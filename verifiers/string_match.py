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

Abstention (unanswerable and image/text-mismatch rows, a gold such as ``unanswerable``) is decided by
``omni_rl.verifiers.combine.reward`` for every verifier (``omni_rl.verifiers.abstention``), not here.

Unknown keyword arguments are ignored (data rows may carry fields meant for other verifiers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .extract import extract_answer
from .normalize import normalize_text, parse_number, split_list

__all__ = ["string_match", "strings_match"]

_DIGIT_RE = re.compile(r"\d")


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


def string_match(response: str, answer: Any, *, ordered: bool = False, **_: Any) -> float:
    """1.0 if the response's final answer equals ``answer`` after normalisation, else 0.0 (module docstring)."""
    golds = [g for g in _alternatives(answer) if g is not None]
    pred = extract_answer(response)
    if not pred:
        return 0.0
    return 1.0 if any(strings_match(pred, g, ordered=ordered) for g in golds if g) else 0.0
