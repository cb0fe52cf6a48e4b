#!/usr/bin/env python
"""Agreement of the ``mathruler`` verifier with labelled (gold, response) pairs, next to math-verify's defaults.

For every case, two verdicts are compared with the label:

* **mathruler**: ``omni_rl.verifiers.mathruler.mathruler(response, gold)`` (what training uses);
* **math-verify**: ``math_verify.verify(parse(gold), parse(response))`` with math-verify's default extraction
  configs (LaTeX *and* plain expressions). This column is a reference only: its plain-expression extractor runs
  ``sympy.parse_expr`` on the text, which is acceptable here because the cases are trusted, and is never done by
  mathruler on model output.

Input: ``--input FILE.jsonl`` with one object per line, ``{"gold": ..., "response": ..., "label": 0|1}`` (``pred`` is
accepted for ``response``; an optional ``family`` groups the report). Without ``--input`` the built-in suite of
hand-written cases is used (``tests/verifiers/mathruler_families.py``: numbers, relations, matrices,
display-or-plain, worked-solutions, sums-and-products, gold-boxes).

Golds are written for mathruler as bare LaTeX (``x \\geq 5``). math-verify's default parse reads a bare string as a
plain expression, so by default (``--mv-gold auto``) a gold without math delimiters that is not a plain number is
wrapped in ``$...$`` for the math-verify column; ``--mv-gold raw`` passes golds unchanged.

Output: per family and in all, the cases each column agrees with the label on (out of n) and the seconds each
column took; then how many cases only one column, or both, get wrong; with ``--show`` those cases themselves.

    python scripts/bench_mathruler.py                  # built-in suite, per-family table
    python scripts/bench_mathruler.py --show           # ... plus every case where a verdict differs from the label
    python scripts/bench_mathruler.py --input cases.jsonl --mv-gold raw --show
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "tests" / "verifiers" / "mathruler_families.py"
_PLAIN_NUMBER_RE = re.compile(r"[-+]?[\d.,/\s]+%?")
_DELIMITERS = ("$", "\\(", "\\[", "\\boxed")


class Case(NamedTuple):
    family: str
    gold: str
    response: str
    label: int


def load_builtin() -> list[Case]:
    spec = importlib.util.spec_from_file_location("mathruler_families", BUILTIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [Case(fam, g, r, int(e)) for fam, cases in module.FAMILIES.items() for g, r, e in cases]


def load_jsonl(path: str) -> list[Case]:
    cases = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                response = row["response"] if "response" in row else row["pred"]
                cases.append(Case(str(row.get("family", "input")), str(row["gold"]), str(response), int(row["label"])))
            except KeyError as e:
                sys.exit(f"{path}:{n}: missing key {e} (need gold, response or pred, label)")
    return cases


def mathruler_verdict() -> Callable[[Case], int]:
    from omni_rl.verifiers.mathruler import mathruler

    return lambda c: int(mathruler(c.response, c.gold) == 1.0)


def math_verify_verdict(gold_mode: str) -> Callable[[Case], int]:
    from math_verify import parse, verify

    def gold_text(gold: str) -> str:
        bare = not any(d in gold for d in _DELIMITERS) and not _PLAIN_NUMBER_RE.fullmatch(gold.strip())
        return f"${gold}$" if gold_mode == "auto" and bare else gold

    def verdict(c: Case) -> int:
        try:
            return int(bool(verify(parse(gold_text(c.gold)), parse(c.response))))
        except Exception:  # a reference column: an error counts as "not equal"
            return 0

    return verdict


def run(cases: list[Case], columns: dict[str, Callable[[Case], int]]) -> tuple[dict, dict]:
    """Verdicts per column (lists aligned with ``cases``) and seconds per column."""
    verdicts, seconds = {}, {}
    for name, fn in columns.items():
        t0 = time.perf_counter()
        verdicts[name] = [fn(c) for c in cases]
        seconds[name] = time.perf_counter() - t0
    return verdicts, seconds


def report(cases: list[Case], verdicts: dict, seconds: dict) -> None:
    by_family = defaultdict(list)
    for i, c in enumerate(cases):
        by_family[c.family].append(i)
    names = list(verdicts)
    print(f"{'family':<44}{'n':>5}" + "".join(f"{name:>22}" for name in names))
    rows = sorted(by_family.items()) + [("ALL", list(range(len(cases))))]
    for fam, idx in rows:
        cells = []
        for name in names:
            ok = sum(verdicts[name][i] == cases[i].label for i in idx)
            cells.append(f"{ok:>5}/{len(idx):<4} {100 * ok / len(idx):6.1f}%   ")
        print(f"{fam[:43]:<44}{len(idx):>5}" + "".join(f"{cell:>22}" for cell in cells))
    print("seconds: " + ", ".join(f"{name} {seconds[name]:.2f}" for name in names))
    if len(names) == 2:
        a, b = names
        only_b = sum(verdicts[a][i] != c.label and verdicts[b][i] == c.label for i, c in enumerate(cases))
        both = sum(verdicts[a][i] != c.label and verdicts[b][i] != c.label for i, c in enumerate(cases))
        only_a = sum(verdicts[a][i] == c.label and verdicts[b][i] != c.label for i, c in enumerate(cases))
        print(f"disagreements with the label: {a} only {only_b}, {b} only {only_a}, both {both}")


def show(cases: list[Case], verdicts: dict, width: int) -> None:
    names = list(verdicts)
    print("\ncases where a verdict differs from the label (" + " / ".join(names) + "):")
    for i, c in enumerate(cases):
        marks = [name for name in names if verdicts[name][i] != c.label]
        if not marks:
            continue
        got = " ".join(f"{name}={verdicts[name][i]}" for name in names)
        print(f"- [{c.family}] label={c.label} {got}  (wrong: {', '.join(marks)})")
        print(f"    gold:     {c.gold[:width]!r}")
        print(f"    response: {c.response[-width:]!r}" if len(c.response) > width else f"    response: {c.response!r}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", metavar="JSONL", help="labelled cases (default: the built-in family suite)")
    ap.add_argument("--show", action="store_true", help="list every case where a verdict differs from the label")
    ap.add_argument("--no-math-verify", action="store_true", help="only the mathruler column")
    ap.add_argument("--mv-gold", choices=("auto", "raw"), default="auto",
                    help="how golds are given to math-verify's parse (default: auto, see above)")
    ap.add_argument("--width", type=int, default=160, help="characters of gold/response shown by --show "
                                                           "(the end of a long response)")
    args = ap.parse_args(argv)

    logging.disable(logging.WARNING)  # math-verify logs every parse failure
    cases = load_jsonl(args.input) if args.input else load_builtin()
    if not cases:
        sys.exit("no cases")
    columns = {"mathruler": mathruler_verdict()}
    if not args.no_math_verify:
        columns["math-verify default"] = math_verify_verdict(args.mv_gold)
    verdicts, seconds = run(cases, columns)
    print(f"{len(cases)} cases from {args.input or BUILTIN.relative_to(ROOT)}; agreement with the labels:\n")
    report(cases, verdicts, seconds)
    if args.show:
        show(cases, verdicts, args.width)


if __name__ == "__main__":
    main()
