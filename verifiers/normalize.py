"""Text normalisation helpers shared by string-match and multiple-choice (pure string operations)."""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

__all__ = ["unwrap_latex_text", "normalize_text", "split_list", "parse_number", "NUMBER_WORDS"]

# \text{...}, \textbf{...}, \mathrm{...} ... -> content. One level per pass, repeated for nesting.
_LATEX_WRAPPER_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|textsf|mathrm|mathbf|mathit|mathsf|mathtt|operatorname|mbox|emph|"
    r"boxed|fbox)"
    r"\s*\{([^{}]*)\}"
)
_LATEX_SPACING_RE = re.compile(r"\\[,;:!> ]|\\quad|\\qquad|~")
_QUOTES = dict.fromkeys(map(ord, "\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a"), None)
_ARTICLES = frozenset(("a", "an", "the"))
_THOUSANDS_RE = re.compile(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d,])")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,4})?$")
_SPACES_RE = re.compile(r"\s+")
_PUNCT_RE = re.compile(r"[^\w\s]|_")

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
}


def unwrap_latex_text(s: str) -> str:
    """``\\text{foo}`` -> ``foo`` (also ``\\mathrm``, ``\\textbf``, ...), spacing commands and ``$`` removed."""
    for _ in range(5):
        new = _LATEX_WRAPPER_RE.sub(r"\1", s)
        if new == s:
            break
        s = new
    s = _LATEX_SPACING_RE.sub(" ", s)
    return s.replace("$", "")


def parse_number(tok: str) -> Fraction | None:
    """Exact value of a plain decimal / integer / ``a/b`` token, else None. No eval; bounded token length."""
    if not tok or len(tok) > 60:
        return None
    t = tok.replace(",", "") if _THOUSANDS_RE.fullmatch(tok.lstrip("+-")) else tok
    if "/" in t:
        num, _, den = t.partition("/")
        if _NUMBER_RE.match(num) and _NUMBER_RE.match(den) and "e" not in num + den:
            try:
                d = Fraction(den)
                return Fraction(num) / d if d != 0 else None
            except (ValueError, ZeroDivisionError):
                return None
        return None
    if _NUMBER_RE.match(t):
        try:
            return Fraction(t)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def _canon_number(tok: str) -> str:
    v = parse_number(tok)
    if v is None:
        return tok
    if v.denominator == 1:
        return str(v.numerator)
    # a terminating decimal prints as one; "1/3" stays a fraction
    return format_fraction(v)


def format_fraction(v: Fraction) -> str:
    den = v.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:
        s = f"{float(v):.15f}".rstrip("0").rstrip(".") if abs(v) < 10**15 else str(float(v))
        return s
    return f"{v.numerator}/{v.denominator}"


def _punct(m: re.Match) -> str:
    """Punctuation -> space, except what keeps a number a number: ``3.5``, ``1/2``, ``-3``; ``%`` is its own token."""
    c = m.group()
    i = m.start()
    text = m.string
    prev = text[i - 1] if i > 0 else " "
    nxt = text[i + 1] if i + 1 < len(text) else " "
    if c in "./" and prev.isdigit() and nxt.isdigit():
        return c
    if c == "." and nxt.isdigit() and not prev.isalnum():
        return c  # ".5"
    if c in "-\u2212" and nxt.isdigit() and not prev.isalnum():
        return "-"
    if c == "%":
        return " % "
    return " "


def normalize_text(s: str, *, drop_articles: bool = True, number_words: bool = True) -> str:
    """Canonical form for text comparison: NFKC, LaTeX text wrappers unwrapped, lower case, quotes and punctuation
    dropped, articles dropped, thousands separators removed, numbers canonicalised (``3.0`` -> ``3``, ``1/2`` ->
    ``0.5``), small number words to digits (``three`` -> ``3``), ``percent`` -> ``%``, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", str(s))
    s = unwrap_latex_text(s).replace("\\%", "%")
    s = s.lower().translate(_QUOTES)
    s = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), s)
    s = _PUNCT_RE.sub(_punct, s)
    words = s.split()
    if drop_articles and len(words) > 1:
        # "the eiffel tower" -> "eiffel tower"; a lone or final "a" (an option letter, "U.S.A.") stays
        words = [w for i, w in enumerate(words) if not (w in _ARTICLES and i + 1 < len(words))]
    toks = []
    for tok in words:
        if number_words and tok in NUMBER_WORDS:
            tok = NUMBER_WORDS[tok]
        elif tok == "percent":
            tok = "%"
        toks.append(_canon_number(tok))
    return " ".join(toks)


_LIST_SPLIT_RE = re.compile(r"\s*(?:;|,(?!\d{3}(?!\d))|\band\b|&|\n)\s*", re.I)


def split_list(s: str) -> list[str]:
    """Split on list separators ``,`` ``;`` ``and`` ``&`` (a thousands separator ``1,000`` is not a separator)."""
    return [p for p in _LIST_SPLIT_RE.split(s) if p and p.strip()]
