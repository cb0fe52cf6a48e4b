"""The final answer of a math response, for ``mathruler`` (string slicing only: nothing here parses or evaluates).

``final_math_answer`` (reasoning up to the last ``</think>`` is dropped first, as everywhere):

1. **Boxes.** The last brace-balanced ``\\boxed{}`` / ``\\fbox{}``. Boxes that end the response one after the other,
   separated only by commas, ``and`` / ``or`` (also in a ``\\text{}`` phrase), a label (``y_1 =``), spacing and math
   delimiters (``\\boxed{-2} and \\boxed{1}``), form one list answer (``-2, 1``; repeated contents are kept once).
   Intermediate boxes earlier in a worked solution are ignored. An explicit ``Final answer: ...`` / ``The final answer
   is ...`` statement written *after* the last box overrides it when it contains a math span, a number or a bare
   formula.
2. **No box.** The last ``Answer: X`` / ``The (final) answer is X`` statement, else the whole response, reduced to
   its *rightmost answer item*: a math span (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``; inline ones on one
   line, display ones across lines; spans joined like boxes form one list), a number written in plain text, or a line
   that is a bare formula (no prose). A statement is cut at its first sentence end ("... is $5$. I hope it is
   correct." -> ``5``). So "Therefore $x \\geq 5$ is the solution." gives ``x \\geq 5``, "the total is 1,000.99€ in
   the end" gives ``1000.99`` and a last line "9" gives ``9``. Nothing found: the last non-empty line.

``gold_box_answer`` (the gold side, which is trusted text): if the last ``\\boxed{`` / ``\\fbox{`` is never closed (a
truncated gold), everything after it; otherwise the last box joined with the boxes before it as math-verify joins them
(one multi-part answer): boxes less than 10 characters apart, or less than 70 apart with ``and`` / ``or`` / ``,`` /
``;`` between them and different contents (``\\boxed{1} papers and \\boxed{2} bins`` -> ``1, 2``;
``\\boxed{1} no no no no no \\boxed{2}`` -> ``2``). An unclosed box in a *response* is not read: it is usually a
generation cut off mid-answer.

Numbers in plain text (outside math spans) are normalised: a currency sign (``$ € £ ¥``) dropped; thousands
separators removed when every group after the first has three digits and the first does not start with ``0``
(``1,000.99`` / ``12 000``); otherwise one comma between digits is a decimal comma (``1000,99`` -> ``1000.99``,
``2,74`` -> ``2.74``, ``0,111`` -> ``0.111``); ``%`` kept as ``\\%``; ``2/3`` kept as a fraction. Inside LaTeX (a box
or a math span) a comma stays a list separator, as in LaTeX itself.

All scans are linear: delimiters are tokenised in one pass and the regexes have no nested unbounded quantifiers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from .extract import (
    _ANSWER_COLON_RE,
    _ANSWER_IS_RE,
    MAX_BOXES,
    clean_answer,
    last_line,
    open_box_tail,
    strip_reasoning,
    trailing_boxes,
)

__all__ = ["final_math_answer", "gold_box_answer", "rightmost_answer", "as_plain_number", "is_prose", "has_math_span"]

MAX_RUN = 8  # boxes / math spans joined into one list answer at most
MAX_GAP = 200  # characters between two boxes of one run at most
MAX_LINE = 300  # a line longer than this is not a bare formula
GOLD_NEAR_GAP = 10  # gold boxes closer than this are one answer ...
GOLD_SEP_GAP = 70  # ... and so are boxes closer than this with "and" / "or" / "," / ";" between them

# text allowed between two boxes of a run: spacing, commas, "and"/"or", math delimiters, a label "y_1 =", a \text{}
# phrase with "and"/"or" in it ("\text{ for part (a) and }")
_JOINER_RE = re.compile(
    r"(?:\s|[,;$]|\\[()\[\],;:! ]|\\\\|\\q?quad|and|or|[A-Za-z](?:_\{?\w{1,3}\}?)?\s*="
    r"|\\(?:text|mathrm|textrm|mbox)\{\s*,?\s*\}|\\(?:text|mathrm|textrm|mbox)\{[^{}]*\b(?:and|or)\b[^{}]*\})*")
# "Final answer: X", "The final answer is X" (Minerva-style statements that may follow a box)
_FINAL_ANSWER_RE = re.compile(
    r"(?i)final[ \t]+answer(?:[ \t]*\**[ \t]*[:：]|[ \t]+is)[ \t]*(?:\*\*[ \t]*)?([^\n]*)")

_GOLD_SEPARATOR_RE = re.compile(r"\b(?:and|or)\b|[,;]")
_SENTENCE_END_RE = re.compile(r"[.!?](?=[ \t]+[A-Z\[(])")
_DELIM_RE = re.compile(r"\\\$|\$\$|\$|\\\[|\\\]|\\\(|\\\)")
_CLOSER = {"$$": "$$", "\\[": "\\]", "$": "$", "\\(": "\\)"}
_INLINE = ("$", "\\(")

_SEP = r"(?:,|\{,\}|,\\!|\\,|[ \u00a0\u202f])"
_NUMBER_RE = re.compile(
    r"(?<![\w.,\\{}^_/\-\u2212])(?P<sign>[-+\u2212])?[ \t]?(?:\\?\$|[€£¥])?[ \t]?"
    rf"(?P<int>[1-9]\d{{0,2}}(?:{_SEP}\d{{3}})+(?!\d)|\d+)(?:(?P<dec>[.,])(?P<frac>\d+))?"
    r"(?:/(?P<den>[1-9]\d*))?(?![\d^_]|[,.]\d)(?P<pct>[ \t]?\\?%)?")
_TEXT_GROUP_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{[^{}]*\}")
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
# a word of three letters or more ("and" joins list items: no prose), or a short English word
_WORD_RE = re.compile(
    r"(?<![A-Za-z])(?:(?!and(?![A-Za-z]))[A-Za-z]{3,}|(?:is|so|of|it|to|be|we|as|at|by|if|on|an)(?![A-Za-z]))", re.I)
_FORMULA_CHAR_RE = re.compile(r"[\w\\]")


class _Item(NamedTuple):
    start: int
    end: int
    text: str


def _plain_number(m: re.Match) -> str:
    """Canonical text of a number matched by ``_NUMBER_RE``: no currency, no thousands separators, ``.`` decimal."""
    digits = re.sub(r"\D", "", m.group("int"))
    if m.group("frac"):
        digits += "." + m.group("frac")
    sign = "-" if m.group("sign") in ("-", "\u2212") else ""
    den = f"/{m.group('den')}" if m.group("den") else ""
    pct = "\\%" if m.group("pct") else ""
    return f"{sign}{digits}{den}{pct}"


def _math_spans(text: str) -> list[_Item]:
    """Math spans of ``text`` in order, paired in one pass over the delimiters. An inline span (``$``, ``\\(``) may
    not cross a line: its closing delimiter then opens a new span."""
    spans: list[_Item] = []
    opener: re.Match | None = None
    for m in _DELIM_RE.finditer(text):
        tok = m.group()
        if tok == "\\$":
            continue
        if opener is None:
            if tok in _CLOSER:
                opener = m
            continue
        if tok != _CLOSER[opener.group()]:
            continue
        content = text[opener.end():m.start()]
        if opener.group() in _INLINE and "\n" in content:
            opener = m
            continue
        if content.strip():
            spans.append(_Item(opener.start(), m.end(), content.strip()))
        opener = None
    return spans


def has_math_span(s: str) -> bool:
    """Whether ``s`` contains a math span (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``)."""
    return bool(_math_spans(s))


def is_prose(s: str) -> bool:
    """Whether ``s`` reads as a sentence rather than a formula: a word of three or more letters, or a short English
    word (``is``, ``so``, ``of``, ...), outside LaTeX commands and ``\\text{}`` groups (``and`` does not count: it
    joins list items)."""
    return _WORD_RE.search(_COMMAND_RE.sub(" ", _TEXT_GROUP_RE.sub(" ", s))) is not None


def _formula_lines(text: str) -> list[_Item]:
    """Lines of ``text`` that are a bare formula or number: no prose, no math delimiters."""
    items, pos = [], 0
    for line in text.splitlines(keepends=True):
        got = clean_answer(line)
        if (got and len(got) <= MAX_LINE and _FORMULA_CHAR_RE.search(got) and not is_prose(got)
                and _DELIM_RE.search(line) is None):
            items.append(_Item(pos, pos + len(line.rstrip()), got))
        pos += len(line)
    return items


def _masked(text: str, spans: list[_Item]) -> str:
    """``text`` with the math spans blanked out (same length, so positions still match)."""
    out, pos = [], 0
    for sp in spans:
        out += [text[pos:sp.start], " " * (sp.end - sp.start)]
        pos = sp.end
    out.append(text[pos:])
    return "".join(out)


def as_plain_number(s: str) -> str:
    """``s`` normalised if the whole of it is one plain-text number (``1000,99``, ``$1,000.99``), else ``s``."""
    m = _NUMBER_RE.fullmatch(s.strip())
    return _plain_number(m) if m else s


def rightmost_answer(text: str) -> str | None:
    """The rightmost answer item of ``text`` (module docstring, step 2); at equal end positions the longer item wins
    (a line ``x^2+1`` over its last number ``1``). None if there is none."""
    spans = _math_spans(text)
    masked = _masked(text, spans)
    numbers = [_Item(m.start(), m.end(), _plain_number(m)) for m in _NUMBER_RE.finditer(masked)]
    lines = [_Item(it.start, it.end, as_plain_number(it.text)) for it in _formula_lines(text)]
    items = spans + numbers + lines
    if not items:
        return None
    best = max(items, key=lambda it: (it.end, -it.start))
    if best in spans:  # "$x = 3$ and $y = 4$" is one answer
        best = _join_run(spans[:spans.index(best) + 1], text)
    return best.text


def _last_statement(rx: re.Pattern, text: str) -> str | None:
    """The first sentence of the text captured by the last match of ``rx`` ("The final answer is $5$. I hope it is
    correct." -> "The final answer is $5$."), or None."""
    last = None
    for m in rx.finditer(text):
        if m.group(1).strip():
            last = m.group(1)
    if last is None:
        return None
    end = _SENTENCE_END_RE.search(last)
    return last[:end.start() + 1] if end else last


def _response_joins(gap: str, prev: _Item, nxt: _Item) -> bool:
    """Whether two items of a response are one list answer: only commas, "and"/"or", spacing or delimiters between."""
    return len(gap) <= MAX_GAP and _JOINER_RE.fullmatch(gap) is not None


def _gold_joins(gap: str, prev: _Item, nxt: _Item) -> bool:
    """Whether two boxes of a gold are one multi-part answer (math-verify's rule): under ``GOLD_NEAR_GAP`` characters
    apart, or under ``GOLD_SEP_GAP`` with a separator between them and different contents."""
    if len(gap) < GOLD_NEAR_GAP:
        return True
    return prev.text != nxt.text and len(gap) < GOLD_SEP_GAP and _GOLD_SEPARATOR_RE.search(gap) is not None


def _join_run(
    items: list[_Item], text: str, joins: Callable[[str, _Item, _Item], bool] = _response_joins, limit: int = MAX_RUN
) -> _Item:
    """The last of ``items`` (in document order) joined with the ones before it for which ``joins(gap, prev, next)``
    holds, at most ``limit`` in all: one list answer (a content repeated is kept once)."""
    run = [items[-1]]  # in reverse order
    for prev in reversed(items[-limit:-1]):
        gap = text[prev.end:run[-1].start]
        if prev.end > run[-1].start or not joins(gap, prev, run[-1]):
            break
        run.append(prev)
    run.reverse()
    contents = list(dict.fromkeys(it.text for it in run if it.text))
    return _Item(run[0].start, run[-1].end, ", ".join(contents))


def gold_box_answer(text: str) -> str | None:
    """The boxed answer of a gold (module docstring), or None if it has no box."""
    tail = open_box_tail(text)
    if tail:
        return tail
    boxes = [_Item(*b) for b in trailing_boxes(text, MAX_BOXES)]
    return _join_run(boxes, text, _gold_joins, MAX_BOXES).text if boxes else None


def final_math_answer(text: str) -> str | None:
    """The final answer of a math response (module docstring), or None."""
    region = strip_reasoning(text)
    boxes = [_Item(*b) for b in trailing_boxes(region, MAX_RUN)]
    if boxes:
        boxed = _join_run(boxes, region)
        after = _last_statement(_FINAL_ANSWER_RE, region[boxed.end:])
        return (rightmost_answer(after) if after else None) or boxed.text
    for rx in (_ANSWER_COLON_RE, _ANSWER_IS_RE):
        stmt = _last_statement(rx, region)
        got = rightmost_answer(stmt) if stmt else None
        if got:
            return got
    return rightmost_answer(region) or last_line(region)
