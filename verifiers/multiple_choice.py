"""``multiple-choice``: the selected option letter.

Spec (RECIPE "Verifier semantics"): selected letter; tolerate ``(B)``, ``B.``, ``B:``, ``B)``; small penalty for extra
characters. The final answer is the last ``\\boxed{}`` after the reasoning, else ``Answer: B`` / ``The answer is B`` /
``**B**`` / the final line (``omni_rl.verifiers.extract``). Then:

* a bare letter, optionally decorated -- ``B``, ``b``, ``(B)``, ``[B]``, ``B.``, ``B:``, ``B)``, ``\\text{B}`` -- scores
  1.0 if it is the gold letter;
* anything longer that still names exactly one letter -- ``B. Paris``, ``Option B``, ``(B) because ...`` -- or, with
  ``options``, just the text of one option (``Paris``), scores ``extra_penalty`` (default 0.9) if that letter is the
  gold;
* two different letters (``B or C``, ``A, C``, ``B. London`` when London is option C) score 0.

``answer``: the gold letter (``"B"``, ``"(B)"``, ``"b"``), or the gold option text / a 0-based index when ``options``
is given. ``options``: ``{"A": "Paris", ...}`` or a list in letter order (``["Paris", "London", ...]``); it restricts
the valid letters and lets option text count. Unknown keyword arguments are ignored.
"""

from __future__ import annotations

import re
import string
from typing import Any

from .extract import extract_answer
from .normalize import normalize_text, unwrap_latex_text

__all__ = ["multiple_choice", "pred_letters"]

_BARE_RE = re.compile(r"^[(\[{]?\s*([A-Za-z])\s*[)\]}]?\s*[.:)]?$")
# "B. Paris", "(B) Paris", "B) Paris", "B: Paris"
_LEADING_RE = re.compile(r"^(?:[(\[]\s*([A-Z])\s*[)\]]|([A-Z])\s*[.:)])\s*(.+)$", re.S)
# letters written as option markers inside longer text
_MARKER_RE = re.compile(
    r"[(\[]\s*([A-Za-z])\s*[)\]]"  # (B) [B]
    r"|(?<![A-Za-z'])([A-Z])[.):](?=\s|$)"  # B. B) B:
    r"|(?i:option|choice|answer|letter)\s*(?:is\s*)?:?\s*([A-Z])(?![A-Za-z])"  # option B
)
# inside the text after a leading letter: "B. Paris or C. London" names C, "(B) vitamin C." does not
_REST_MARKER_RE = re.compile(
    r"[(\[]\s*([A-Za-z])\s*[)\]]"
    r"|(?<![A-Za-z'])([A-Z])[.):]\s+\S"
    r"|(?i:option|choice|answer|letter)\s*(?:is\s*)?:?\s*([A-Z])(?![A-Za-z])"
)
_STANDALONE_RE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_SEPARATORS_RE = re.compile(r"(?i)\b(?:and|or|&)\b|[\s,;/&()\[\].:|+]")


def _options_map(options: Any) -> dict[str, str]:
    if options is None:
        return {}
    if isinstance(options, dict):
        return {str(k).strip().strip("().").upper(): str(v) for k, v in options.items()}
    if isinstance(options, (list, tuple)):
        if len(options) > 26:
            raise ValueError(f"multiple-choice supports at most 26 options, got {len(options)}")
        return {string.ascii_uppercase[i]: str(v) for i, v in enumerate(options)}
    raise TypeError(f"options must be a dict letter->text or a list, got {type(options).__name__}")


def _clean(s: str) -> str:
    s = unwrap_latex_text(s).replace("**", "").strip()
    return s.strip("`'\" \t\n")


def _by_text(text: str, opts: dict[str, str]) -> str | None:
    t = normalize_text(text)
    if not t:
        return None
    hits = [k for k, v in opts.items() if normalize_text(v) == t]
    return hits[0] if len(hits) == 1 else None


def pred_letters(candidate: str, opts: dict[str, str]) -> tuple[set[str], bool]:
    """Letters named by an extracted final answer and whether it is a bare (decorated) letter."""
    c = _clean(candidate)
    valid = set(opts) if opts else set(string.ascii_uppercase)
    m = _BARE_RE.match(c)
    if m:
        return ({m.group(1).upper()} & valid), True
    m = _LEADING_RE.match(c)
    if m:
        letter = (m.group(1) or m.group(2)).upper()
        rest = m.group(3)
        letters = {letter} if letter in valid else set()
        other = _by_text(rest, opts) if opts else None
        if other is not None:  # "B. Paris": the text names an option too (the same one or a conflicting one)
            return letters | {other}, False
        more = {a.upper() for g in _REST_MARKER_RE.findall(rest) for a in g if a} & valid
        return letters | more, False
    letters = {a.upper() for g in _MARKER_RE.findall(c) for a in g if a} & valid
    if not letters and not _SEPARATORS_RE.sub("", _STANDALONE_RE.sub("", c)):
        # only letters and separators: "B and C", "A, C"
        letters = set(_STANDALONE_RE.findall(c)) & valid
    if not letters and opts:
        hit = _by_text(c, opts)
        if hit is not None:
            letters = {hit}
    return letters, False


def _gold_letter(answer: Any, opts: dict[str, str]) -> str:
    if isinstance(answer, bool):
        raise TypeError("multiple-choice answer must be a letter, option text or index, not a bool")
    if isinstance(answer, int):
        if not opts:
            raise ValueError("an integer multiple-choice answer needs `options`")
        return string.ascii_uppercase[answer]
    if isinstance(answer, (list, tuple)) and len(answer) == 1:
        return _gold_letter(answer[0], opts)
    if not isinstance(answer, str):
        raise TypeError(f"multiple-choice answer must be a letter, got {type(answer).__name__}")
    c = _clean(answer)
    m = _BARE_RE.match(c) or _LEADING_RE.match(c)
    if m:
        return next(g for g in m.groups() if g).upper()
    if opts:
        hit = _by_text(c, opts)
        if hit is not None:
            return hit
    raise ValueError(f"cannot read a gold letter from {answer!r}")


def multiple_choice(response: str, answer: Any, *, options: Any = None, extra_penalty: float = 0.9,
                    **_: Any) -> float:
    """Score of the selected letter against the gold letter (module docstring)."""
    opts = _options_map(options)
    gold = _gold_letter(answer, opts)
    cand = extract_answer(response)
    if not cand:
        return 0.0
    letters, bare = pred_letters(cand, opts)
    if letters != {gold}:
        return 0.0
    return 1.0 if bare else float(extra_penalty)
