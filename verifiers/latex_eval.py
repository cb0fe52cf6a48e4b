"""A small, safe numeric evaluator for a LaTeX arithmetic subset (the mathruler fast path).

Why: math-verify parses LaTeX with an ANTLR grammar in pure Python (slow: docs/benchmarks.md) and then runs sympy.
Most RL math answers are numbers or short closed forms (``\\frac{\\sqrt{3}}{2}``, ``2\\pi``, ``(x+1)^2``), which this
evaluator handles in microseconds; everything else falls through to math-verify.

Supported: decimal numbers, ``+ - * /``, ``\\cdot \\times \\div``, ``^`` (``x^23`` is read as ``x^{23}``, like
math-verify does), ``( ) [ ] { }`` grouping, ``\\frac \\dfrac \\tfrac`` (braced or single-character arguments),
``\\sqrt{}``, ``\\sqrt[n]{}``, ``\\sin \\cos \\tan \\sec \\csc \\cot \\arcsin \\arccos \\arctan \\ln \\log \\exp``,
``\\pi``, ``e`` (Euler's number, as latex2sympy reads it), lower-case single-letter variables (evaluated at fixed
irrational points, so ``(x+1)^2`` and ``x^2+2x+1`` agree), implicit multiplication (``2x``, ``2\\sqrt{3}``,
``x(x+1)``), and ``\\sum`` / ``\\prod`` with literal integer bounds (``\\sum_{k=1}^{10} k^2``, ``\\prod^{4}_{k=1} k``,
``\\sum\\limits_{i=0}^{9}``): at most ``MAX_TERMS`` terms, the index a lower-case letter other than ``e``, the body one
multiplicative term as latex2sympy reads it (``\\sum_{k=1}^{3} k + 1`` is 7). Anything else (``=``, ``,``, other
functions, ``i`` outside a sum, upper-case letters, ``\\infty``, factorials, symbolic or computed bounds
(``\\sum_{k=1}^{n}``, ``^{10^{9}}``), an empty range, ...) raises ``Unsupported`` and the caller falls back.

Safety: a hand-written recursive-descent parser over a bounded string (``MAX_LEN`` chars, ``MAX_DEPTH`` nesting);
arithmetic is Python ``complex`` floats, so no operation can allocate a huge integer or run for long (``9^{9^{9}}``
overflows and raises ``Unsupported``). A sum or product re-reads its body once per index value and every step of the
parse counts against ``MAX_STEPS``, so long or nested sums (``\\sum_{i=1}^{1000}\\sum_{j=1}^{1000} ij``) raise
``Unsupported`` after a bounded amount of work. Nothing is ever passed to ``eval``/``sympify``.
"""

from __future__ import annotations

import cmath
import math
import re
from typing import NamedTuple

__all__ = ["Unsupported", "Evaluated", "evaluate", "VAR_POINTS"]

MAX_LEN = 400
MAX_DEPTH = 40
MAX_TERMS = 1000  # terms of one \sum / \prod at most
MAX_STEPS = 10_000  # parse steps (primaries read) per evaluation: bounds nested and long sums
_BIG = 1e150  # |value| beyond this is treated as overflow (also keeps x^y bounded)

# two assignments of values to single-letter variables (irrational-looking, positive, distinct per letter). Lower case
# only: upper-case letters (E, I, N, ...) mean different things to different parsers, so they are Unsupported.
VAR_POINTS: tuple[dict[str, float], ...] = tuple(
    {ch: base + 0.1031 * k for k, ch in enumerate("abcdfghjklmnopqrstuvwxyz")}
    for base in (0.5772156649, 1.3247179572)
)


class Unsupported(Exception):
    """The expression is outside the supported subset (or overflowed)."""


_BINARY_CMDS = {"\\cdot": "*", "\\times": "*", "\\div": "/", "\\ast": "*"}
_FUNCS = {
    "\\sin": cmath.sin, "\\cos": cmath.cos, "\\tan": cmath.tan,
    "\\sec": lambda z: 1 / cmath.cos(z), "\\csc": lambda z: 1 / cmath.sin(z), "\\cot": lambda z: 1 / cmath.tan(z),
    "\\arcsin": cmath.asin, "\\arccos": cmath.acos, "\\arctan": cmath.atan,
    "\\ln": cmath.log, "\\exp": cmath.exp, "\\log": cmath.log10,  # \\log is base 10, as latex2sympy reads it
}
_BIG_OPS = ("\\sum", "\\prod")
_STARTS_PRIMARY = ("\\frac", "\\dfrac", "\\tfrac", "\\sqrt", "\\pi", *_FUNCS, *_BIG_OPS)
# limits of a sum / product: "_{k=1}" and "^{10}" (or "^9"), literal integers only, optional "\\limits"
_LOWER_RE = re.compile(r"\s*(?:\\(?:no)?limits)?\s*_\s*\{\s*([a-df-z])\s*=\s*([+-]?\d{1,6})\s*\}")
_UPPER_RE = re.compile(r"\s*(?:\\(?:no)?limits)?\s*\^\s*(?:\{\s*([+-]?\d{1,6})\s*\}|(\d)(?!\d))")


class _Parser:
    def __init__(self, s: str, env: dict[str, float]):
        self.s = s
        self.i = 0
        self.env = env
        self.depth = 0
        self.used_vars = False
        self.used_funcs = False  # function-argument conventions vary: callers treat such values as "equal-only"
        self.bound: dict[str, complex] = {}  # index variables of the enclosing sums / products
        self.steps = 0

    # --- lexing helpers -------------------------------------------------------------------------------------------
    def _skip(self) -> None:
        s, i = self.s, self.i
        while i < len(s) and s[i] == " ":
            i += 1
        self.i = i

    def _peek(self) -> str:
        self._skip()
        return self.s[self.i] if self.i < len(self.s) else ""

    def _cmd(self) -> str:
        """If a ``\\command`` starts here return it (without consuming), else ''."""
        self._skip()
        s, i = self.s, self.i
        if i < len(s) and s[i] == "\\":
            j = i + 1
            while j < len(s) and s[j].isalpha():
                j += 1
            return s[i:j] if j > i + 1 else s[i:i + 2]
        return ""

    def _eat(self, tok: str) -> None:
        self._skip()
        if not self.s.startswith(tok, self.i):
            raise Unsupported(f"expected {tok!r} at {self.i}")
        self.i += len(tok)

    # --- grammar --------------------------------------------------------------------------------------------------
    def parse(self) -> complex:
        v = self.expr()
        self._skip()
        if self.i != len(self.s):
            raise Unsupported(f"trailing input at {self.i}")
        return v

    def expr(self) -> complex:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Unsupported("too deep")
        v = self.term()
        while True:
            c = self._peek()
            if c == "+":
                self.i += 1
                v = _chk(v + self.term())
            elif c == "-":
                self.i += 1
                v = _chk(v - self.term())
            else:
                break
        self.depth -= 1
        return v

    def term(self) -> complex:
        v = self.unary()
        while True:
            c = self._peek()
            cmd = self._cmd()
            if c in "*/" and c:
                self.i += 1
                rhs = self.unary()
                v = _chk(v * rhs) if c == "*" else _div(v, rhs)
            elif cmd in _BINARY_CMDS:
                self.i += len(cmd)
                rhs = self.unary()
                v = _chk(v * rhs) if _BINARY_CMDS[cmd] == "*" else _div(v, rhs)
            elif c and (c.isalnum() or c in "({[." or cmd in _STARTS_PRIMARY):
                v = _chk(v * self.power())  # implicit multiplication
            else:
                return v

    def unary(self) -> complex:
        c = self._peek()
        if c == "-":
            self.i += 1
            return -self.unary()
        if c == "+":
            self.i += 1
            return self.unary()
        return self.power()

    def power(self) -> complex:
        base = self.primary()
        if self._peek() == "^":
            self.i += 1
            exp = self.exponent()
            base = _pow(base, exp)
        return base

    def exponent(self) -> complex:
        c = self._peek()
        if c == "{":
            return self.group()
        if c.isdigit():  # x^23 is x^{23}: what models mean, and how math-verify reads it (strict LaTeX: x^2 * 3)
            return self.number()
        if c == "-":  # x^-1 (sloppy but common)
            self.i += 1
            return -self.exponent()
        if c.isalpha():
            return self.primary()
        if self._cmd() == "\\pi":
            return self.primary()
        raise Unsupported("bad exponent")

    def group(self) -> complex:
        self._eat("{")
        v = self.expr()
        self._eat("}")
        return v

    def arg(self) -> complex:
        """A braced group or a single character (``\\frac12``)."""
        c = self._peek()
        if c == "{":
            return self.group()
        if c.isdigit():
            self.i += 1
            return complex(int(c))
        if c.isalpha():
            return self.primary()
        raise Unsupported("bad argument")

    def primary(self) -> complex:
        self.depth += 1
        self.steps += 1
        if self.depth > MAX_DEPTH or self.steps > MAX_STEPS:
            raise Unsupported("too deep or too long")
        try:
            c = self._peek()
            if not c:
                raise Unsupported("unexpected end")
            if c.isdigit() or c == ".":
                return self.number()
            if c in "([{":
                close = {"(": ")", "[": "]", "{": "}"}[c]
                self.i += 1
                v = self.expr()
                self._eat(close)
                return v
            if c == "\\":
                cmd = self._cmd()
                if cmd in ("\\frac", "\\dfrac", "\\tfrac"):
                    self.i += len(cmd)
                    num = self.arg()
                    return _div(num, self.arg())
                if cmd == "\\sqrt":
                    self.i += len(cmd)
                    if self._peek() == "[":
                        self.i += 1
                        n = self.expr()
                        self._eat("]")
                        return _pow(self.arg(), _div(1, n))
                    return _pow(self.arg(), 0.5)
                if cmd == "\\pi":
                    self.i += len(cmd)
                    return complex(math.pi)
                if cmd in _FUNCS:
                    self.i += len(cmd)
                    return self.function(cmd)
                if cmd in _BIG_OPS:
                    self.i += len(cmd)
                    return self.big_op(cmd)
                raise Unsupported(f"command {cmd}")
            if c.isalpha() and c.isascii():
                self.i += 1
                if c in self.bound:
                    return self.bound[c]
                if c == "e":
                    return complex(math.e)
                if c == "i":
                    raise Unsupported("imaginary unit / ambiguous i")
                if c not in self.env:
                    raise Unsupported(f"variable {c}")
                self.used_vars = True
                return complex(self.env[c])
            raise Unsupported(f"unexpected {c!r}")
        finally:
            self.depth -= 1

    def function(self, cmd: str) -> complex:
        """``\\sin x``, ``\\sin(2x)``, ``\\sin^2 x`` (= (sin x)^2), ``\\log_2 8``, ``\\sin 2\\pi`` (= sin(2 pi)): the
        argument is a group or an implicit product, as latex2sympy reads it."""
        self.used_funcs = True
        fn = _FUNCS[cmd]
        base = None
        if cmd == "\\log" and self._peek() == "_":
            self.i += 1
            base = self.arg()
        power = None
        if self._peek() == "^":
            self.i += 1
            power = self.exponent()
            if power == -1:
                raise Unsupported("inverse-function notation")
        if self._peek() in ("(", "{"):
            x = self.primary()
        else:
            x = self.power()
            while True:  # implicit product: \\sin 2\\pi x
                c, cmd2 = self._peek(), self._cmd()
                if c and (c.isalnum() or c == "." or cmd2 in ("\\pi", "\\sqrt", "\\frac", "\\dfrac", "\\tfrac")):
                    x = _chk(x * self.power())
                else:
                    break
        try:
            v = fn(x) if base is None else cmath.log(x) / cmath.log(base)
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            raise Unsupported(str(e)) from None
        v = _chk(v)
        return _pow(v, power) if power is not None else v

    def limits(self) -> tuple[str, int, int]:
        """Index variable, lower and upper bound of a sum / product (``_{k=a}^{b}`` in either order)."""
        lo = _LOWER_RE.match(self.s, self.i)
        up = _UPPER_RE.match(self.s, lo.end() if lo else self.i)
        if lo is None and up is not None:
            lo = _LOWER_RE.match(self.s, up.end())
        if lo is None or up is None:
            raise Unsupported("sum / product limits must be literal integers")
        self.i = max(lo.end(), up.end())
        return lo.group(1), int(lo.group(2)), int(up.group(1) or up.group(2))

    def big_op(self, cmd: str) -> complex:
        """``\\sum`` / ``\\prod`` over a literal integer range: the body (one multiplicative term) is read once per
        index value."""
        var, lo, hi = self.limits()
        if not 0 <= hi - lo < MAX_TERMS:
            raise Unsupported("empty or too long range")
        start, outer = self.i, self.bound.get(var)
        total = complex(1 if cmd == "\\prod" else 0)
        for k in range(lo, hi + 1):
            self.i, self.bound[var] = start, complex(k)
            v = self.term()
            total = _chk(total * v if cmd == "\\prod" else total + v)
        if outer is None:
            del self.bound[var]
        else:
            self.bound[var] = outer
        return total

    def number(self) -> complex:
        s, i = self.s, self.i
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        tok = s[i:j]
        if tok.count(".") > 1 or tok == "." or j - i > 40:
            raise Unsupported("bad number")
        self.i = j
        return complex(float(tok))


def _chk(v: complex) -> complex:
    if not (abs(v.real) < _BIG and abs(v.imag) < _BIG) or v != v:
        raise Unsupported("overflow")
    return v


def _div(a: complex, b: complex) -> complex:
    if b == 0:
        raise Unsupported("division by zero")
    return _chk(a / b)


def _pow(a: complex, b: complex) -> complex:
    try:
        if b.imag == 0 and b.real == int(b.real) and abs(b.real) <= 64 and a.imag == 0:
            r = complex(a.real ** int(b.real)) if (a.real != 0 or b.real >= 0) else None
            if r is None:
                raise Unsupported("0 to a negative power")
            return _chk(r)
        if a == 0:
            if b.real > 0:
                return complex(0)
            raise Unsupported("0 to a non-positive power")
        if abs(b) > 1e4:
            raise Unsupported("exponent too large")
        return _chk(cmath.exp(b * cmath.log(a)))
    except (OverflowError, ValueError, ZeroDivisionError) as e:
        raise Unsupported(str(e)) from None


class Evaluated(NamedTuple):
    value: complex
    used_vars: bool  # single-letter variables (evaluated at ``env``)
    used_funcs: bool  # \\sin, \\ln, ... (argument conventions vary, so callers only trust agreement)


def evaluate(s: str, env: dict[str, float] | None = None) -> Evaluated:
    """Value of the LaTeX expression ``s`` at the variable assignment ``env``. Raises ``Unsupported``."""
    if len(s) > MAX_LEN:
        raise Unsupported("too long")
    p = _Parser(s, env if env is not None else VAR_POINTS[0])
    try:
        v = p.parse()
    except RecursionError:
        raise Unsupported("too deep") from None
    return Evaluated(v, p.used_vars, p.used_funcs)
