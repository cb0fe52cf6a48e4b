"""Answer extraction shared by all verifiers.

A response is untrusted model output. This module only slices strings: nothing here parses, evaluates or imports.

Order of operations (``extract_answer``):

1. ``strip_reasoning``: drop the reasoning. If the response contains ``</think>``, everything up to the *last*
   ``</think>`` is reasoning (this also covers chat templates that inject the opening ``<think>`` into the prompt, so
   the response starts inside the think block). An opening ``<think>`` that is never closed means the response was
   cut off mid-reasoning: there is no final answer (empty string).
2. The last ``\\boxed{...}`` (or ``\\fbox{...}``) in what remains, brace-balanced (``\\boxed{\\frac{1}{2}}`` ->
   ``\\frac{1}{2}``). ``\\boxed 5`` (no braces) is accepted too.
3. Fallbacks, in order: the last ``Answer: X`` / ``Final answer: X``, the last ``The (final) answer is X``, the last
   ``**X**`` bold span, the final non-empty line.

All regexes here are linear (no nested quantifiers), so a multi-megabyte response cannot blow up extraction time.
"""

from __future__ import annotations

import re

__all__ = [
    "THINK_OPEN",
    "THINK_CLOSE",
    "strip_reasoning",
    "find_boxed",
    "last_boxed",
    "trailing_boxes",
    "open_box_tail",
    "extract_answer",
    "clean_answer",
    "last_line",
]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_BOX_START_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")

# "Answer: X", "Final answer: X", "**Answer:** X" (colon inside or outside the bold). Every quantifier in these
# patterns is followed by a disjoint token, so matching stays linear on hostile input (e.g. 1e6 spaces).
_ANSWER_COLON_RE = re.compile(r"(?im)answer[ \t]*(?:\*\*[ \t]*)?[:：][ \t]*(?:\*\*[ \t]*)?([^\n]*)")
# "The answer is X", "The final answer is: X", "the correct answer is X".
_ANSWER_IS_RE = re.compile(
    r"(?i)the[ \t]+(?:final[ \t]+|correct[ \t]+|right[ \t]+)?answer[ \t]+"
    r"(?:is|would[ \t]+be|will[ \t]+be)[ \t]*(?:[:：][ \t]*)?([^\n]*)"
)
_BOLD_RE = re.compile(r"\*\*([^*\n]{1,200})\*\*")


def strip_reasoning(text: str) -> str:
    """Return the part of ``text`` after the reasoning block (see module docstring)."""
    if not isinstance(text, str):
        return ""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE):]
    if THINK_OPEN in text:
        # Opened and never closed: truncated inside the reasoning, so there is no answer.
        return ""
    return text


_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.S)
MAX_GROUP_CHARS = 20_000  # a boxed answer longer than this is not an answer; bounds hostile-input scan time
MAX_BOXES = 64  # boxes looked at per response (format counting saturates long before this)


def _brace_matches(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of its matching ``}`` (escaped ``\\{`` ``\\}`` ignored). One linear pass, so
    thousands of unbalanced boxes cost no more than one."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            match[stack.pop()] = m.start()
    return match


def _box_at(text: str, m: re.Match, match: dict[int, int]) -> tuple[str, int] | None:
    """The box whose command matched at ``m``: (content, end index) or None if unbalanced / absurdly long."""
    n = len(text)
    i = m.end()
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == "{":
        close = match.get(i)
        if close is None or close - i > MAX_GROUP_CHARS:
            return None
        return text[i + 1:close], close + 1
    if i > m.end() and i < n:
        # "\boxed 5": one whitespace-delimited token
        j = i
        while j < n and j - i < 200 and not text[j].isspace() and text[j] != "$":
            j += 1
        return text[i:j], j
    return None


def find_boxed(text: str, limit: int = MAX_BOXES) -> list[str]:
    """Contents of the ``\\boxed{}`` / ``\\fbox{}`` groups in ``text`` in order (at most ``limit``); unbalanced ones
    are skipped."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    match = _brace_matches(text)
    out: list[str] = []
    pos = 0
    while len(out) < limit:
        m = _BOX_START_RE.search(text, pos)
        if m is None:
            break
        got = _box_at(text, m, match)
        if got is None:
            pos = m.end()
            continue
        out.append(got[0].strip())
        pos = got[1]
    return out


def trailing_boxes(text: str, limit: int = 1) -> list[tuple[int, int, str]]:
    """The last ``limit`` balanced boxes of ``text`` as ``(start, end, content)``, in document order."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    match = _brace_matches(text)
    out: list[tuple[int, int, str]] = []
    for m in reversed(list(_BOX_START_RE.finditer(text))):
        got = _box_at(text, m, match)
        if got is not None:
            out.append((m.start(), got[1], got[0].strip()))
            if len(out) >= limit:
                break
    return out[::-1]


def open_box_tail(text: str) -> str | None:
    """What follows the last ``\\boxed{`` / ``\\fbox{`` of ``text`` when that brace is never closed (a truncated
    box: ``\\boxed{W(n) = 1`` -> ``W(n) = 1``), stripped; None when the last box is closed or there is none."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    last = None
    for last in _BOX_START_RE.finditer(text):
        pass
    if last is None:
        return None
    i = last.end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text) or text[i] != "{" or i in _brace_matches(text):
        return None
    return text[i + 1:].strip() or None


def last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{}``/``\\fbox{}`` in ``text`` or None."""
    boxes = trailing_boxes(text)
    return boxes[-1][2] if boxes else None


def clean_answer(ans: str) -> str:
    """Trim decoration that surrounds an extracted answer: whitespace, ``$``, trailing full stop, bold markers."""
    s = ans.strip()
    for _ in range(3):
        before = s
        s = s.strip().strip("*").strip()
        if s.startswith("$$") and s.endswith("$$") and len(s) >= 4:
            s = s[2:-2]
        elif s.startswith("$") and s.endswith("$") and len(s) >= 2:
            s = s[1:-1]
        elif s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2]
        elif s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2]
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1]
        if s == before:
            break
    return s.strip()


def _fallback(region: str) -> str | None:
    for rx in (_ANSWER_COLON_RE, _ANSWER_IS_RE):
        last = None
        for m in rx.finditer(region):
            if m.group(1).strip():
                last = m
        if last is not None:
            got = clean_answer(last.group(1))
            if got:
                return got
    last_bold = None
    for m in _BOLD_RE.finditer(region):
        last_bold = m
    if last_bold is not None:
        got = clean_answer(last_bold.group(1))
        if got:
            return got
    return last_line(region)


def last_line(text: str) -> str | None:
    """The last non-empty line of ``text`` after ``clean_answer``, or None."""
    for line in reversed(text.splitlines()):
        got = clean_answer(line)
        if got:
            return got
    return None


def extract_answer(text: str, *, fallback: bool = True) -> str | None:
    """The final answer of a response: last box after the reasoning, else the fallbacks. None if nothing."""
    region = strip_reasoning(text)
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed.strip()
    if not fallback:
        return None
    return _fallback(region)
