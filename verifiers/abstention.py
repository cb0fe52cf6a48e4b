"""Abstention: does a response say "this cannot be answered", and is a gold answer itself such a statement?

The recipe's omni RL data holds a small set of unanswerable and image/text-mismatched prompts (rows with
``"unanswerable": true``) that teach the model to abstain. ``omni_rl.verifiers.combine.reward`` applies the rule to
every verifier (docs/verifiers.md); this module only detects.

**Where**: on the response's final answer (``final_answer``): the last ``\\boxed{}`` after the reasoning, else the
whole text after the reasoning (a response cut off inside ``<think>`` has no final answer and never abstains).

**Markers.** Text is compared after ``normalize_text(..., drop_articles=False, number_words=False)`` (lower case,
quotes and apostrophes dropped, punctuation -> space: ``can't`` -> ``cant``, ``N/A`` -> ``n a``). With
``markers=None`` the built-in markers apply: a final answer abstains when it contains one of
``DEFAULT_ABSTENTION_MARKERS`` as whole words, or one of the built-in phrasings (``_PHRASING_RE``: "cannot [be]
[reliably] determine / tell / answer / see ...", "no / not enough / insufficient information / context / data ...",
"the image / picture / video / audio / question ... does not show / contain / match ...", "not visible in", "I don't
know", ...). A list of markers (``verify.abstention_markers``) replaces both: a final answer abstains when it
contains one of the given phrases as whole words.

**Gold markers.** A gold answer that *is* a marker (the whole normalised string equals one; for a list of acceptable
answers, any of them) declares its row unanswerable, like ``"unanswerable": true`` (rows written before the field
existed, a gold of ``none of the above``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from .extract import last_boxed, strip_reasoning
from .normalize import normalize_text

__all__ = ["DEFAULT_ABSTENTION_MARKERS", "final_answer", "is_abstention", "abstains", "gold_is_marker",
           "check_markers"]

# The recipe's abstention markers: phrases whose presence (as whole words) in a final answer means "this cannot be
# answered". Also the gold answers that declare a row unanswerable.
DEFAULT_ABSTENTION_MARKERS: tuple[str, ...] = (
    "unanswerable", "not answerable", "cannot be answered", "cannot answer",
    "cannot be determined", "can not be determined", "cannot determine", "impossible to determine",
    "unable to determine", "not determinable",
    "not enough information", "insufficient information", "not enough info",
    "the image does not show", "image text mismatch", "mismatch",
    "none of the above", "none of these", "none of the options",
    "no answer", "no correct answer", "unknown", "n/a", "not applicable", "i don't know",
)

# Built-in phrasings, applied to normalised text (lower case, apostrophes removed, punctuation -> space), used with
# the default markers only.
_PHRASING_RE = re.compile(
    r"\b(?:"
    r"(?:cannot|can not|cant|could not|couldnt|unable to|impossible to|not possible to|no way to|hard to|difficult to)"
    r" (?:be )?(?:reliably |accurately |definitively |confidently )?"
    r"(?:determine|determined|answer|answered|tell|told|know|known|infer|inferred|identify|identified|say|conclude|"
    r"ascertain|verify|verified|see|read|find|compute|calculate)"
    r"|(?:not|no|insufficient|inadequate|lacking|lack of|missing) (?:enough |sufficient |adequate )?"
    r"(?:information|info|context|data|details|evidence|visual information|clues)"
    r"|un ?answerable|none of (?:above|these|options|choices|answers)"
    r"|no (?:correct|valid|right) (?:answer|option|choice)"
    r"|(?:image|picture|photo|photograph|video|audio|clip|figure|chart|graph|diagram|table|document|screenshot|"
    r"recording|question|text|context|scene)s? (?:does not|doesnt|do not|dont|did not|didnt|cannot|cant|is not|isnt|"
    r"are not|arent) (?:clearly )?(?:show|contain|include|depict|provide|mention|display|have|give|match|correspond|"
    r"specify|indicate|visible|shown|present|relate|describe)"
    r"|not (?:visible|shown|depicted|mentioned|provided|specified|present|given|stated|indicated) (?:in|on|by)"
    r"|(?:is|are) (?:not|no) (?:\w+ ){0,3}(?:visible|shown|depicted|present) (?:in|on)"
    r"|(?:does not|doesnt|do not|dont) match"
    r"|i (?:dont|do not) know"
    r")\b"
)

MAX_CHARS = 4000  # a final answer is read up to this length (bounds the time on hostile input)


def _norm(text: str) -> str:
    return normalize_text(text, drop_articles=False, number_words=False)


def check_markers(markers: Sequence[str] | None) -> tuple[str, ...] | None:
    """``markers`` as a tuple (None stays None: the built-in markers); raises ValueError saying what to fix."""
    if markers is None:
        return None
    if isinstance(markers, (str, bytes)) or not isinstance(markers, Sequence):
        raise ValueError(f"abstention markers must be a list of phrases, got {markers!r:.80}")
    out = tuple(markers)
    if not out:
        raise ValueError("abstention markers: the list is empty; give at least one phrase (or null for the "
                         "built-in markers)")
    for m in out:
        if not isinstance(m, str):
            raise ValueError(f"abstention marker {m!r:.80} is not a string; give phrases such as 'cannot be determined'")
        if not _norm(m):
            raise ValueError(f"abstention marker {m!r:.80} has no words after normalisation (lower case, "
                             "punctuation dropped); give a phrase such as 'cannot be determined'")
    return out


def _matcher(markers: Sequence[str] | None) -> tuple[frozenset[str], Callable[[str], bool]]:
    key = tuple(markers) if isinstance(markers, Sequence) and not isinstance(markers, (str, bytes)) else markers
    try:
        return _compiled(key)
    except TypeError:  # unhashable: not a list of phrases
        check_markers(markers)
        raise


@lru_cache(maxsize=16)
def _compiled(markers: Any) -> tuple[frozenset[str], Callable[[str], bool]]:
    """(normalised marker set, predicate on normalised text) for a marker tuple (None: the built-in markers)."""
    markers = check_markers(markers)
    normed = frozenset(_norm(m) for m in (DEFAULT_ABSTENTION_MARKERS if markers is None else markers))
    phrases = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(normed, key=len, reverse=True)) + r")\b")
    if markers is None:
        return normed, lambda t: phrases.search(t) is not None or _PHRASING_RE.search(t) is not None
    return normed, lambda t: phrases.search(t) is not None


def is_abstention(text: str | None, markers: Sequence[str] | None = None) -> bool:
    """True if ``text`` (a final answer) reads as "this cannot be answered" (module docstring)."""
    if not text or not isinstance(text, str):
        return False
    _, pred = _matcher(markers)
    return pred(_norm(text[:MAX_CHARS]))


def final_answer(response: str) -> str:
    """The text abstention is read from: the last box after the reasoning, else all the text after it."""
    region = strip_reasoning(response)
    boxed = last_boxed(region)
    return boxed if boxed is not None else region


def abstains(response: str, markers: Sequence[str] | None = None) -> bool:
    """True if the response's final answer abstains (module docstring)."""
    return isinstance(response, str) and is_abstention(final_answer(response), markers)


def _strings(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, (list, tuple)):
        return [a for a in answer if isinstance(a, str)]
    return []


def gold_is_marker(answer: Any, markers: Sequence[str] | None = None) -> bool:
    """True if the gold answer (a string, or any string of a list of acceptable answers) is itself a marker."""
    normed, _ = _matcher(markers)
    return any(_norm(a[:MAX_CHARS]) in normed for a in _strings(answer))
