"""``mathruler``: symbolic / numeric equivalence of the final (boxed) answer with the ground truth.

Spec (RECIPE "Verifier semantics"): fractions, decimals, LaTeX, thousands separators, units/percent stripped, algebraic
equivalence. Built on math-verify (LaTeX -> sympy through latex2sympy2_extended's ANTLR grammar) and sympy, with three
cheaper stages in front of it.

**The prediction** is the final answer of the response (``math_answer.final_math_answer``): the last ``\\boxed{}``
after the reasoning (a run of boxes that ends the response, ``\\boxed{-2} and \\boxed{1}``, is one list answer;
earlier boxes of a worked solution are ignored; a ``Final answer: ...`` statement written after the last box wins);
without a box, the last ``Answer: X`` / ``The answer is X`` statement or else the whole response, reduced to its
rightmost math span (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``), plain-text number or bare-formula line.
Plain-text numbers lose currency signs and thousands separators and read a decimal comma as a point (``1,000.99€``
-> ``1000.99``, ``2,74 $`` -> ``2.74``); inside LaTeX a comma separates list items (``\\boxed{1000,99}`` is a list).

**The gold** (each acceptable alternative): with a box, its boxed answer (``math_answer.gold_box_answer``): the last
box joined with the boxes before it that are less than 10 characters away, or less than 70 with ``and`` / ``or`` /
``,`` / ``;`` between them (math-verify's rule: ``\\boxed{1} papers and \\boxed{2} bins`` is ``1, 2``,
``\\boxed{1} no no no no no \\boxed{2}`` is ``2``), or, when the last ``\\boxed{`` is never closed, everything after
it (``\\boxed{W(n) = 1`` -> ``W(n) = 1``; golds only: in a response it is a cut-off generation); a worked solution
without a box (prose around math spans) is reduced to its final answer like a response; a plain number with a
decimal comma is also read with a point (``1,22`` matches ``1.22`` and the list ``1, 22``).

Then, for each gold form, in order:

1. **Canonical string equality** after ``canonical_latex``: ``$``, ``\\left``/``\\right``, spacing commands, spaces,
   ``\\dfrac``/``\\tfrac`` -> ``\\frac``, degrees (``^\\circ``, ``°``), ``\\%``, currency (``\\$``, ``€``, ``£``,
   ``¥``, ``\\euro``), units (``\\text{ cm}``, ``12 cm``, ``5 apples``), thousands separators (``1,000`` /
   ``1{,}000`` / ``1,\\!000``), a braced decimal comma (``12{,}5`` -> ``12.5``), a leading ``x =`` / ``a_{1} =``
   removed (not the ``\\sum_{i=`` of a sum), and one spelling per relation (``>=``, ``\\ge``, ``≥``, ``\\geqslant``
   -> ``\\geq``; ``!=``, ``\\ne``, ``≠`` -> ``\\neq``; ``\\lt``/``\\gt`` -> ``<``/``>``). Matrix row breaks
   ``\\\\`` survive.
2. **Numeric fast path** (``latex_eval``): both sides evaluated by a tiny safe evaluator (numbers, ``\\frac``,
   ``\\sqrt``, ``\\pi``, powers, common functions, single-letter variables at two fixed points). Two plain numbers
   are decided here: equal iff ``|p - g| <= tol * max(1, |g|)`` (tol 1e-6 if a side is written with a decimal point,
   else 1e-9). Expressions in single-letter variables are evaluated at two fixed points: agreement at both is
   equality, disagreement is inequality. With functions (``\\sin``, ``\\ln``, ...) agreement counts as equal but
   disagreement falls through to math-verify (LaTeX function-argument conventions vary). Tuples, intervals
   (brackets must match), sets and bare lists (``3, 4`` = ``4, 3``) whose elements are plain numbers (or
   ``\\infty``) are decided here too, and so are matrices and vectors (``pmatrix``, ``bmatrix``, ``Bmatrix``,
   ``matrix``, ``smallmatrix``, ``array``, bracket style ignored): different shapes differ, otherwise entry by entry
   as above (``\\begin{pmatrix}1/2\\\\3\\end{pmatrix}`` = ``\\begin{bmatrix}0.5\\\\3\\end{bmatrix}``). ``vmatrix`` is
   a determinant and goes to math-verify.
   Percent: ``25\\%`` equals ``25``; when exactly one side carries ``%``, ``0.25`` is also accepted.
   ``\\sum`` / ``\\prod`` with literal integer bounds (at most 1000 terms, nesting within the evaluator's step budget)
   are evaluated here like any expression (``\\sum_{i=1}^{10} i`` = ``55``).
2b. **Sums and products by their parts** (``_compare_big_ops``), for those the evaluator cannot read (symbolic
   bounds): ``prefix \\sum_{..}^{..} body`` on both sides with the same prefix (an assignment ``F_n =`` counts as
   none), operator and limits (spaces ignored, ``_`` / ``^`` in either order) and equivalent bodies (``math_equal`` on
   the bodies, which contain one sum fewer) is equal: ``\\sum_{k=0}^{n-1} a_k b_{n-k}`` = ``\\sum_{k=0}^{n-1} b_{n-k}
   a_k``. A body must be one multiplicative term (no top-level ``+``/``-``, no relation, separator or ``%``), which
   is the extent latex2sympy gives it, and stage 1 must leave it as written (no unit stripped). Anything else is left
   undecided (never "different": equal sums can have different summands) and scored 0 by the guards. A prediction
   with more than ``MAX_BIG_OPS`` (4) sums / products scores 0 unless it is the gold's text.
3. **Guards** (``precheck``) before anything reaches sympy: length > 1000, nesting > 15, power towers with numeric
   exponents (``9^{9^{9^{9^9}}}``), numeric exponents > 10^4, factorials of groups or of numbers > 1000, ``\\sum``,
   ``\\prod``, ``\\int``, ``\\lim``, big binomials, > 500-digit literals, and code-like text (``__``, ``import``,
   ``eval``, ``lambda`` without a backslash, ...) score 0 immediately. So sympy never sees a sum or a product: those
   are decided by stages 1, 2 and 2b or scored 0.
4. **math-verify** ``parse`` (LaTeX extraction only: its ``ExprExtractionConfig`` uses ``sympy.parse_expr``, i.e.
   ``eval``, so it is never used on model output) and ``verify``, both with math-verify's own ``signal.alarm``
   timeout disabled (it raises off the main thread). Parsed golds and predictions are cached (LRU). Relations and
   inequalities are decided here (``x \\geq 5`` = ``5 \\leq x``, ``x \\geq 5`` != ``x > 5``), with
   ``allow_set_relation_comp`` (``x \\geq 5`` = ``[5, \\infty)``).

Time bound: in the main thread (a direct call, or a pool worker) stage 4 runs under a ``setitimer`` deadline
(``timeout_s``, default 2 s) unless the caller already armed ``ITIMER_REAL`` (we never clobber another timer); a
comparison that hits it scores 0 and is logged. Off the main thread there is no signal: the guards of stage 3 bound
the known pathological inputs and ``omni_rl.verifiers.pool`` kills stuck workers.

Deviations from math-verify defaults: no plain-expression (``parse_expr``) extraction; the numeric fast path decides
pure-number comparisons without sympy (same answer, far faster: docs/benchmarks.md); the last box is the answer even
when an earlier "final answer is" sentence names something else; ``x < 3`` and ``(-\\infty, 3)`` are equal whichever side is the gold
(math-verify's default accepts an interval for a relation gold but not a relation for an interval gold); a response's
unclosed ``\\boxed{`` is not read; sums and products are never handed to sympy (closed forms of symbolic sums are
not recognised: ``\\sum_{k=1}^{n} k`` != ``\\frac{n(n+1)}{2}`` here).
"""

from __future__ import annotations

import logging
import math
import re
import signal
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from .latex_eval import VAR_POINTS, Unsupported, evaluate
from .math_answer import as_plain_number, final_math_answer, gold_box_answer, has_math_span, is_prose

__all__ = ["mathruler", "math_equal", "canonical_latex", "normalize_relations", "precheck"]

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 1000
MAX_NESTING = 15

# --------------------------------------------------------------------------------------------------------------------
# stage 1: canonical string
# --------------------------------------------------------------------------------------------------------------------
_REMOVE = (
    "\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\quad", "\\qquad", "~", "$",
    "\\big", "\\Big", "\\bigg", "\\Bigg",
)
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\\circ\b|(?<=\d)\s*degrees?\b", re.I)
_UNIT_WORDS = (
    "cm|mm|km|nm|um|kg|mg|lb|lbs|oz|sec|secs|second|min|mins|minute|hr|hrs|hour|day|week|month|year|ms|ns|ml|"
    "liter|litre|gal|gallon|ft|feet|foot|inch|inches|yd|yard|mi|mile|meter|metre|centimeter|centimetre|kilometer|"
    "kilometre|millimeter|millimetre|mph|kph|kmh|deg|degree|radian|rad|dollar|cent|euro|pound|unit|sq|square|cubic|"
    "percent|m|s|g|h|l|L|N|J|W|V|A|K|Pa|Hz"
)
# "\text{ cm}^2", "\mathrm{m/s}" after a number or closing brace
_TEXT_UNIT_RE = re.compile(
    r"(?<=[\d}\s.])\s*\\(?:text|mathrm|mbox|textrm|operatorname)\s*\{\s*[A-Za-z][A-Za-z .\/]*\}"
    r"(?:\s*\^\s*\{?\d\}?)?\s*$")
_PLAIN_UNIT_RE = re.compile(
    rf"(?<=\d)(?:\s*(?:(?:{_UNIT_WORDS})(?:e?s)?)(?:\s*/\s*[A-Za-z]{{1,4}})?(?:\^\{{?[23]\}}?)?"
    rf"|\s+[A-Za-z]{{3,}}(?:\s+[A-Za-z]{{3,}})?)\s*$")
_WRAPPER_RE = re.compile(r"^\\(?:text|mathrm|textbf|mathbf|mbox)\s*\{([^{}]*)\}$")
_THOUSANDS_RE = re.compile(r"^[+-]?[1-9]\d{0,2}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?$")
# a leading "x =", "x_1 =", "a_{12} =", "\\alpha =" (a subscript brace must close: "\\sum_{i=1}" is not one)
_ASSIGN_RE = re.compile(r"^\s*(?:[A-Za-z]|\\[a-zA-Z]+)(?:_(?:\{\w+\}|\w+))?\s*=\s*(?!.*=)")
_FRAC_VARIANTS_RE = re.compile(r"\\[dt]frac\b|\\cfrac\b")
_BRACED_COMMA_RE = re.compile(r"\{\s*,\s*\}")
_BRACED_DECIMAL_COMMA_RE = re.compile(r"^[+-]?\d+\{,\}\d+$")  # "2{,}5": a decimal comma in LaTeX
_CURRENCY_RE = re.compile(r"\\(?:euro|pounds|textdollar|textsterling|textyen|texteuro)(?![A-Za-z])|[€£¥]")
_ROW_BREAK = "\x00"  # stands for "\\\\" while spacing commands are removed ("\\\\ " is not "\\ ")
# relation symbols, one spelling each: "x >= 5", "x \\ge 5", "x ≥ 5" and "x \\geqslant 5" all read "x \\geq 5"
_RELATION_RE = re.compile(
    r"\\(?:geqslant|geq|ge|leqslant|leq|le|neq|ne|gt|lt)(?![A-Za-z])|>=|<=|!=|[≥⩾≤⩽≠]")
_RELATIONS = {
    "\\geqslant": "\\geq ", "\\geq": "\\geq ", "\\ge": "\\geq ", ">=": "\\geq ", "≥": "\\geq ", "⩾": "\\geq ",
    "\\leqslant": "\\leq ", "\\leq": "\\leq ", "\\le": "\\leq ", "<=": "\\leq ", "≤": "\\leq ", "⩽": "\\leq ",
    "\\neq": "\\neq ", "\\ne": "\\neq ", "!=": "\\neq ", "≠": "\\neq ", "\\gt": ">", "\\lt": "<",
}


def normalize_relations(s: str) -> str:
    """One spelling per relation symbol (``>=``, ``\\ge``, ``≥``, ``\\geqslant`` -> ``\\geq``; ``\\lt`` -> ``<``)."""
    return _RELATION_RE.sub(lambda m: _RELATIONS[m.group()], s)


def _strip_markup(s: str) -> str:
    """Spacing commands, ``\\left``/``\\right``, ``$`` and currency signs removed (matrix row breaks kept), one
    spelling per relation and per fraction command."""
    s = _BRACED_COMMA_RE.sub("{,}", s.strip().replace("\\$", "").replace(",\\!", "{,}"))
    s = s.replace("\\\\", _ROW_BREAK)
    for tok in _REMOVE:
        if tok in s:
            s = s.replace(tok, " " if tok.startswith("\\") and len(tok) > 2 else "")
    s = normalize_relations(_CURRENCY_RE.sub("", s)).replace(_ROW_BREAK, "\\\\")
    return _FRAC_VARIANTS_RE.sub(r"\\frac", s)


def _number_separators(s: str) -> str:
    """A whole-answer number with thousands separators (``1,000``, ``1{,}000``) or a braced decimal comma
    (``12{,}5``) written plainly."""
    if _THOUSANDS_RE.match(s.strip()):
        return s.replace("{,}", "").replace("\\,", "").replace(",", "")
    if _BRACED_DECIMAL_COMMA_RE.match(s.strip()):
        return s.replace("{,}", ".")
    return s


def canonical_latex(s: str) -> tuple[str, bool]:
    """Canonical string of an answer and whether it carried a percent sign (stage 1 in the module docstring)."""
    s = _strip_markup(s)
    m = _WRAPPER_RE.match(s.strip())
    if m:
        s = m.group(1)
    percent = False
    if "%" in s:
        new = s.replace("\\%", "").replace("%", "")
        percent = new != s
        s = new
    s = _DEGREE_RE.sub("", s)
    s = _TEXT_UNIT_RE.sub("", s)
    s = s.strip().rstrip(".").strip()
    s = _PLAIN_UNIT_RE.sub("", s)
    s = _ASSIGN_RE.sub("", _number_separators(s), count=1)
    s = s.replace(" ", "")
    if s.startswith("+") and len(s) > 1:
        s = s[1:]
    return s, percent


# --------------------------------------------------------------------------------------------------------------------
# stage 2: numeric fast path
# --------------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8192)
def _values(canon: str) -> tuple[tuple[complex, complex], bool, bool] | None:
    """Values at the two variable points, whether variables and whether functions were used; None if unsupported."""
    try:
        e0 = evaluate(canon, VAR_POINTS[0])
        v1 = evaluate(canon, VAR_POINTS[1]).value if e0.used_vars else e0.value
    except Unsupported:
        return None
    return (e0.value, v1), e0.used_vars, e0.used_funcs


def _close(a: complex, b: complex, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def _compare_values(p_canon: str, g_canon: str, p_pct: bool = False, g_pct: bool = False) -> bool | None:
    """Stage 2 for single values: True/False when the evaluator reads both sides and can decide, else None."""
    p_vals, g_vals = _values(p_canon), _values(g_canon)
    if p_vals is None or g_vals is None:
        return None
    (pv, p_var, p_fn), (gv, g_var, g_fn) = p_vals, g_vals
    tol = 1e-6 if ("." in p_canon or "." in g_canon) else 1e-9
    if all(_close(a, b, tol) for a, b in zip(pv, gv)):
        return True  # equal at both points
    if not p_var and not g_var and p_pct != g_pct:  # "25%" vs "0.25"
        scale = 100 if p_pct else 0.01
        if _close(pv[0], gv[0] * scale, tol) or _close(pv[0] * scale, gv[0], tol):
            return True
    if not p_fn and not g_fn:
        # both fully read as numbers / rational-power expressions in single-letter variables: a mismatch at a point
        # proves they differ (e.g. "x^2 + 1" vs "(x+1)^2", or "3" vs "2")
        return False
    return None  # functions involved: their argument conventions vary, so a mismatch is not conclusive


_OPEN = (("\\{", "\\}"), ("(", ")"), ("[", "]"), ("(", "]"), ("[", ")"))
_INF = {"\\infty": math.inf, "+\\infty": math.inf, "-\\infty": -math.inf, "\\inf": math.inf}


def _split_top(s: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for k, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[start:k])
            start = k + 1
    parts.append(s[start:])
    return parts


def _as_list(canon: str) -> tuple[str, list[complex]] | None:
    """``(kind, values)`` for a tuple/interval/set/bare list of plain numbers (kind = its brackets, or "" for a bare
    list), else None. ``\\infty`` is allowed."""
    kind, inner = "", canon
    for o, c in _OPEN:
        if canon.startswith(o) and canon.endswith(c) and len(canon) > len(o) + len(c):
            kind, inner = o + c, canon[len(o):-len(c)]
            break
    parts = _split_top(inner)
    if len(parts) < 2 or len(parts) > 64:
        return None
    values = []
    for part in parts:
        if part in _INF:
            values.append(complex(_INF[part]))
            continue
        try:
            ev = evaluate(part)
        except Unsupported:
            return None
        if ev.used_vars or ev.used_funcs:
            return None
        values.append(ev.value)
    return kind, values


def _same(a: complex, b: complex, tol: float) -> bool:
    if math.isinf(a.real) or math.isinf(b.real):
        return a == b
    return _close(a, b, tol)


def _compare_lists(p_canon: str, g_canon: str) -> bool | None:
    """Stage 2 for tuples, intervals, sets and bare lists of plain numbers: True/False, or None if not decidable
    here (mixed kinds such as a set against a tuple go to math-verify)."""
    if "," not in p_canon or "," not in g_canon:
        return None
    lp, lg = _as_list(p_canon), _as_list(g_canon)
    if lp is None or lg is None:
        return None
    (pk, pv), (gk, gv) = lp, lg
    tol = 1e-6 if ("." in p_canon or "." in g_canon) else 1e-9
    unordered = {pk, gk} <= {"\\{\\}", ""}
    if unordered and pk == gk:  # sets, or bare lists "3, 4" = "4, 3"
        left = list(gv)
        for a in pv:
            hit = next((k for k, b in enumerate(left) if _same(a, b, tol)), None)
            if hit is None:
                return False
            left.pop(hit)
        return not left
    if pk and gk and "\\{\\}" not in (pk, gk):  # tuples / intervals: brackets and elements must agree
        return pk == gk and len(pv) == len(gv) and all(_same(a, b, tol) for a, b in zip(pv, gv))
    return None


# matrices and vectors: pmatrix / bmatrix / Bmatrix / matrix / smallmatrix / array (optionally in brackets). vmatrix
# is a determinant, not a matrix: it is left to math-verify.
_MATRIX_RE = re.compile(
    r"^[(\[]?\\begin\{(pmatrix|bmatrix|Bmatrix|matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}[)\]]?$",
    re.S)


def _matrix_cells(canon: str) -> list[list[str]] | None:
    """Rows of entry strings of a matrix written as one environment, or None (not a matrix / ragged rows)."""
    m = _MATRIX_RE.match(canon)
    if m is None or "\\begin" in m.group(2) or "\\end" in m.group(2):  # several environments: "A + B", "AB"
        return None
    body = m.group(2).replace("\\hline", "")
    rows = [r.split("&") for r in body.split("\\\\")]
    if rows and rows[-1] == [""]:
        rows.pop()  # a trailing "\\\\"
    if not rows or any(len(r) != len(rows[0]) for r in rows) or any(c == "" for r in rows for c in r):
        return None
    return rows


def _compare_matrices(p_canon: str, g_canon: str) -> bool | None:
    """Stage 2 for matrices and vectors: entry-wise, bracket style ignored (``pmatrix`` = ``bmatrix``). True/False when
    the shapes differ or every entry is read by the numeric evaluator, else None (math-verify decides)."""
    pm, gm = _matrix_cells(p_canon), _matrix_cells(g_canon)
    if pm is None or gm is None:
        return None
    if len(pm) != len(gm) or len(pm[0]) != len(gm[0]):
        return False
    verdicts = [_compare_values(a, b) for pr, gr in zip(pm, gm) for a, b in zip(pr, gr)]
    if False in verdicts:
        return False
    return None if None in verdicts else True


# --------------------------------------------------------------------------------------------------------------------
# stage 2b: sums and products the evaluator cannot read (symbolic bounds), compared by their parts
# --------------------------------------------------------------------------------------------------------------------
MAX_BIG_OPS = 4  # \sum / \prod in one prediction at most (each may be evaluated term by term)
_SUM_PROD_RE = re.compile(r"\\(?:sum|prod)(?![A-Za-z])")
_LIMITS_CMD_RE = re.compile(r"\s*(?:\\(?:no)?limits)?\s*")
# a summand compared on its own must be one term: no relation, list separator, alignment, percent or plus-minus
_NOT_A_TERM_RE = re.compile(
    r"[=<>,;&%|]|\\(?:geq|leq|neq|approx|equiv|sim|simeq|cong|in|notin|ni|subset|subseteq|supset|supseteq|to|"
    r"rightarrow|Rightarrow|implies|iff|pm|mp|cup|cap|setminus|mid)(?![A-Za-z])")
_INDEX_START_RE = re.compile(r"_\s*\{\s*[A-Za-z]\s*=")  # "_{k=" of a nested sum: not a relation


def _group_end(s: str, j: int) -> int:
    """End of the script argument at ``s[j]``: a braced group, a command or one character (-1 if unbalanced)."""
    if s[j] == "\\":
        k = j + 1
        while k < len(s) and s[k].isalpha():
            k += 1
        return max(k, j + 2)
    if s[j] != "{":
        return j + 1
    depth = 0
    for k in range(j, len(s)):
        depth += (s[k] == "{") - (s[k] == "}")
        if depth == 0:
            return k + 1
    return -1


def _limits(s: str, i: int) -> tuple[tuple[str, ...], int] | None:
    """The two scripts after a ``\\sum`` / ``\\prod`` ending at ``i`` (``_{k=0}``, ``^{n-1}``, spaces removed, in a
    fixed order) and where they end; None unless there is exactly one ``_`` and one ``^``."""
    scripts = []
    for _ in range(2):
        i = _LIMITS_CMD_RE.match(s, i).end()
        j = i + 1
        while j < len(s) and s[j] == " ":
            j += 1
        if i >= len(s) or s[i] not in "_^" or j >= len(s) or (end := _group_end(s, j)) < 0:
            return None
        scripts.append(s[i] + s[j:end].replace(" ", ""))
        i = end
    if {sc[0] for sc in scripts} != {"_", "^"}:
        return None
    return tuple(sorted(scripts)), i


def _one_term(body: str) -> bool:
    """Whether ``body`` is one balanced multiplicative term (the extent of a summand, as latex2sympy reads it)."""
    if not body or _NOT_A_TERM_RE.search(_INDEX_START_RE.sub("_{", body)):
        return False
    depth = 0
    for k, c in enumerate(body):
        depth += (c in "([{") - (c in ")]}")
        if depth < 0 or (c in "+-" and depth == 0 and k > 0):
            return False
    return depth == 0


def _split_big_op(s: str) -> tuple[str, tuple[str, ...], str] | None:
    """``(prefix, (operator, scripts...), body)`` of an answer ``prefix \\sum_{..}^{..} body`` whose body (the rest
    of it) is one term, else None. An assignment prefix (``F_n =``) reads as none, as in stage 1."""
    m = _SUM_PROD_RE.search(s)
    got = _limits(s, m.end()) if m else None
    if got is None or not _one_term(s[got[1]:].strip()):
        return None
    prefix = s[:m.start()].replace(" ", "")
    return ("" if _ASSIGN_RE.fullmatch(prefix) else prefix), (m.group(), *got[0]), s[got[1]:].strip()


def _as_written(s: str) -> bool:
    """Whether stage 1 only drops markup from ``s`` (no unit, percent, degree, assignment or separator removed): then
    an equality of ``s`` with another term is an equality of values."""
    canon, pct = canonical_latex(s)
    return not pct and canon == _strip_markup(s).replace(" ", "")


def _compare_big_ops(pred: str, gold: str, timeout_s: float | None) -> bool | None:
    """Stage 2b: True when both answers are ``prefix \\sum_{..}^{..} body`` (or ``\\prod``) with the same prefix,
    operator and limits and equivalent bodies (``math_equal`` on the bodies alone, so no sum reaches sympy); else None
    -- never False, since equal sums can have different summands."""
    sp, sg = _split_big_op(_strip_markup(pred)), _split_big_op(_strip_markup(gold))
    if sp is None or sg is None or sp[:2] != sg[:2] or not (_as_written(sp[2]) and _as_written(sg[2])):
        return None
    return True if math_equal(sp[2], sg[2], timeout_s=timeout_s) else None


# --------------------------------------------------------------------------------------------------------------------
# stage 3: guards
# --------------------------------------------------------------------------------------------------------------------
_CODE_RE = re.compile(
    r"__|(?<![\\A-Za-z])(?:import|eval|exec|lambda|compile|getattr|setattr|globals|locals|builtins|subprocess|"
    r"system|popen|open|os\.|sys\.)(?![A-Za-z])", re.I)
_BIG_OPS_RE = re.compile(r"\\(?:sum|prod|int|iint|iiint|oint|lim|limsup|liminf|coprod|bigcup|bigcap)(?![A-Za-z])")
_FACTORIAL_RE = re.compile(r"(\d+)\s*!|[)}\]]\s*!")
_LONG_NUMBER_RE = re.compile(r"\d{501,}")
_BINOM_RE = re.compile(r"\\(?:binom|dbinom|tbinom|choose)")
_INT_RE = re.compile(r"\d+")


def _exponents(s: str) -> Iterable[str]:
    """Text of every exponent (after ``^``): a braced group, a command or one character."""
    i = s.find("^")
    while i >= 0:
        j = i + 1
        while j < len(s) and s[j] == " ":
            j += 1
        if j < len(s) and s[j] == "{":
            depth, k = 0, j
            while k < len(s):
                if s[k] == "{":
                    depth += 1
                elif s[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            yield s[j + 1:k]
        elif j < len(s) and s[j] == "\\":
            k = j + 1
            while k < len(s) and s[k].isalpha():
                k += 1
            yield s[j:k]
        else:
            yield s[j:j + 1]
        i = s.find("^", i + 1)


def precheck(s: str) -> str | None:
    """Why ``s`` must not reach sympy (stage 3 of the module docstring), or None if it may."""
    if len(s) > MAX_ANSWER_CHARS:
        return "too long"
    if _CODE_RE.search(s):
        return "code-like text"
    depth = best = 0
    for c in s:
        if c in "{([":
            depth += 1
            best = max(best, depth)
        elif c in "})]":
            depth -= 1
    if best > MAX_NESTING:
        return "nesting too deep"
    if s.count("^") > 40:
        return "too many powers"
    for exp in _exponents(s):
        letters = re.sub(r"\\[A-Za-z]+", "", exp)
        numeric = not re.search(r"[A-Za-z]", letters)
        if "^" in exp and numeric:
            return "numeric power tower"
        ints = [int(x) for x in _INT_RE.findall(exp)[:20] if len(x) < 30] if numeric else []
        if numeric and (any(len(x) > 5 for x in _INT_RE.findall(exp)) or any(v > 10_000 for v in ints)):
            return "exponent too large"
    for m in _FACTORIAL_RE.finditer(s):
        if m.group(1) is None or len(m.group(1)) > 4 or int(m.group(1)) > 1000:
            return "factorial too large"
    if _BIG_OPS_RE.search(s):
        return "sums/products/integrals/limits are not evaluated"
    if _LONG_NUMBER_RE.search(s):
        return "number literal too long"
    if _BINOM_RE.search(s) and any(len(x) > 4 for x in _INT_RE.findall(s)):
        return "binomial too large"
    if s.count("&") + s.count("\\\\") > 200:
        return "matrix too large"
    return None


# --------------------------------------------------------------------------------------------------------------------
# stage 4: math-verify under a main-thread deadline
# --------------------------------------------------------------------------------------------------------------------
class _Deadline(BaseException):
    """Raised by the SIGALRM handler. A BaseException so that sympy's/math-verify's ``except Exception`` do not eat
    it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Deadline()


@contextmanager
def _time_limit(seconds: float | None):
    """Raise ``_Deadline`` in the body after ``seconds`` -- only in the main thread and only if no other
    ``ITIMER_REAL`` is armed; otherwise a no-op (never ``signal.alarm`` off the main thread)."""
    if (not seconds or seconds <= 0 or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield
        return
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, old)


class _DropTimeoutWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


_mv: Any = None


def _math_verify() -> Any:
    """Import math-verify lazily (sympy + ANTLR: ~0.5 s) and silence its "timeout disabled" warning: we bound time
    ourselves."""
    global _mv
    if _mv is None:
        import math_verify

        for name in ("math_verify", "math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_DropTimeoutWarning())
        _mv = math_verify
    return _mv


@lru_cache(maxsize=8192)
def _mv_parse(latex: str) -> tuple:
    mv = _math_verify()
    cfg = [mv.LatexExtractionConfig(boxed_match_priority=0)]
    return tuple(mv.parse(f"${latex}$", extraction_config=cfg, parsing_timeout=None))


def _mv_equal(gold: str, pred: str) -> bool:
    g, p = _mv_parse(gold), _mv_parse(pred)
    if not g or not p:
        return False
    # allow_set_relation_comp: "x < 3" is accepted for "(-\\infty, 3)" and vice versa
    return bool(_math_verify().verify(list(g), list(p), timeout_seconds=None, allow_set_relation_comp=True))


# --------------------------------------------------------------------------------------------------------------------
# the verifier
# --------------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8192)
def _gold_info(gold: str) -> tuple[str, bool, str | None]:
    canon, pct = canonical_latex(gold)
    return canon, pct, precheck(gold)


def _prepare_for_mv(s: str) -> str:
    """math-verify input: the raw answer minus percent signs, currency signs and degree marks (math-verify keeps
    ``25\\%`` as a string), relations spelled one way, spaces kept (``\\pi r`` must not become ``\\pir``)."""
    s = normalize_relations(_CURRENCY_RE.sub("", s.replace("\\%", "").replace("%", "")))
    return _DEGREE_RE.sub("", s).strip()


def _fast_path(p_canon: str, g_canon: str, p_pct: bool, g_pct: bool) -> bool | None:
    """Stage 2 on canonical strings: single values, then lists / intervals / sets, then matrices; None if undecided."""
    decided = _compare_values(p_canon, g_canon, p_pct, g_pct)
    if decided is None:
        decided = _compare_lists(p_canon, g_canon)
    if decided is None:
        decided = _compare_matrices(p_canon, g_canon)
    return decided


def math_equal(pred: str, gold: str, *, timeout_s: float | None = 2.0) -> bool:
    """Whether the answer string ``pred`` is mathematically equivalent to ``gold`` (module docstring)."""
    g_canon, g_pct, g_bad = _gold_info(gold)
    if len(pred) > 4 * MAX_ANSWER_CHARS:
        return False
    p_canon, p_pct = canonical_latex(pred)
    if not p_canon:
        return False
    if p_canon == g_canon:  # percent signs are dropped: "25\\%" == "25"
        return True
    if len(_SUM_PROD_RE.findall(p_canon)) > MAX_BIG_OPS:
        return False
    decided = _fast_path(p_canon, g_canon, p_pct, g_pct)
    if decided is None:
        decided = _compare_big_ops(pred, gold, timeout_s)
    if decided is not None:
        return decided
    if g_bad is not None:
        return False
    why = precheck(pred)
    if why is not None:
        log.debug("mathruler: prediction rejected before sympy (%s)", why)
        return False
    try:
        with _time_limit(timeout_s):
            return _mv_equal(_prepare_for_mv(gold), _prepare_for_mv(pred))
    except _Deadline:
        log.warning("mathruler: comparison exceeded %.1fs (pred %.80r, gold %.80r); scored 0", timeout_s, pred, gold)
        return False


def _alternatives(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, bool) or answer is None:
        raise TypeError(f"mathruler answer must be a string or a number, got {answer!r}")
    if isinstance(answer, (int, float)):
        return [repr(answer) if isinstance(answer, float) else str(answer)]
    if isinstance(answer, (list, tuple)):
        return [a for x in answer for a in _alternatives(x)]
    return [str(answer)]


@lru_cache(maxsize=8192)
def _gold_forms(gold: str) -> tuple[str, ...]:
    """The forms a gold string is compared in: its boxed answer if it has a box (``math_answer.gold_box_answer``: the
    trailing run of boxes, or what follows an unclosed last ``\\boxed{``), a worked solution without a box (prose
    around math spans) reduced to its final answer like a response, plus the decimal-comma reading of a plain number
    (``1,22`` -> ``1.22``)."""
    boxed = gold_box_answer(gold)
    if boxed:
        gold = boxed
    elif is_prose(gold) and has_math_span(gold):
        gold = final_math_answer(gold) or gold
    return tuple(dict.fromkeys((gold, as_plain_number(gold))))


def mathruler(response: str, answer: Any, *, timeout_s: float | None = 2.0, **_: Any) -> float:
    """1.0 if the final answer of ``response`` is equivalent to ``answer`` (a string, a number, or a list of
    acceptable alternatives), else 0.0. Unknown keyword arguments are ignored."""
    pred = final_math_answer(response)
    if not pred:
        return 0.0
    golds = [form for g in _alternatives(answer) for form in _gold_forms(g)]
    return 1.0 if any(math_equal(pred, g, timeout_s=timeout_s) for g in golds) else 0.0
