#!/usr/bin/env python
"""Benchmark the verifiers: scores/s in the process pool and in a single process, plus pathological inputs.

The batch follows the recipe's verifier mix (multiple-choice 34%, string-match 31%, math 26%, GUI 6%, ASR 3%), with
think blocks of a few hundred characters and about half of the answers correct (correct ones often written in a
different but equivalent form: ``0.5`` for ``\\frac{1}{2}``, ``(B)`` for ``B``, ...). A handful of pathological items
(power towers, huge factorials, deep nesting, a 1 MB response, code payloads, a never-returning plugin) is added to the
pool batch; each is also timed on its own in this process.

    python scripts/bench_verifiers.py                 # 20,000 items, 2 workers
    python scripts/bench_verifiers.py --n 5000 --workers 1 --timeout 2
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

WORDS = ("the of and so we then thus since because area angle triangle value option figure chart shows label axis "
         "compute check again consider first second next total number image left right top bottom row column "
         "therefore which means equals sum difference ratio").split()


def _think(rng: random.Random) -> str:
    n = rng.randint(40, 90)  # ~250-550 characters
    return "<think>" + " ".join(rng.choice(WORDS) for _ in range(n)) + ".</think>\n"


def _math(rng: random.Random, correct: bool) -> tuple[str, str]:
    """(gold, prediction) with random values, so that caches only help as much as they would in training."""
    kind = rng.random()
    if kind < 0.40:  # integers, sometimes with thousands separators / units / an assignment
        g = rng.randint(-50, 50_000)
        p = g if correct else g + rng.choice([-2, -1, 1, 3, 10])
        pred = rng.choice([f"{p}", f"{p:,}", f"{p}\\text{{ cm}}", f"x = {p}"]) if p >= 0 else str(p)
        return str(g), pred
    if kind < 0.58:  # fractions vs decimals
        a, b = rng.randint(1, 200), rng.choice([2, 4, 5, 8, 10, 20, 25, 3, 7])
        a2 = a if correct else a + 1
        return f"\\frac{{{a}}}{{{b}}}", rng.choice([f"{a2 / b:.10g}", f"\\dfrac{{{a2}}}{{{b}}}", f"{a2}/{b}"])
    if kind < 0.68:  # closed forms
        k, m = rng.randint(2, 30), rng.choice([2, 3, 5])
        return f"{k}\\sqrt{{{m}}}", (f"\\sqrt{{{m * k * k}}}" if correct else f"{k + 1}\\sqrt{{{m}}}")
    if kind < 0.76:  # polynomials
        a = rng.randint(1, 99)
        return f"(x+{a})^2", (f"x^2 + {2 * a}x + {a * a}" if correct else f"x^2 + {a * a}")
    if kind < 0.80:  # trigonometry
        k = rng.randint(1, 50)
        return f"{k}", (f"{k}(\\sin^2 x + \\cos^2 x)" if correct else f"{k}\\sin^2 x")
    if kind < 0.86:  # percent / degrees
        g = rng.randint(1, 999)
        return f"{g}\\%", (rng.choice([f"{g}\\%", f"{g / 100:g}", f"{g}"]) if correct else f"{g + 1}\\%")
    if kind < 0.96:  # intervals, tuples, sets
        a, b = sorted(rng.sample(range(-500, 500), 2))
        form = rng.choice(["[{}, {})", "({}, {})", "\\{{{}, {}\\}}"])
        gold = form.format(a, b)
        return gold, (form.format(a, b).replace(", ", ",") if correct else form.format(a, b + 1))
    # matrices in different environments: only math-verify decides these (the slow path, ~20-80 ms per new string)
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    b2 = b if correct else b + 1
    return (f"\\begin{{pmatrix}} {a} \\\\ {b} \\end{{pmatrix}}",
            f"\\begin{{bmatrix}} {a} \\\\ {b2} \\end{{bmatrix}}")


def make_items(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    mix = [("multiple-choice", 0.34), ("string-match", 0.31), ("mathruler", 0.26), ("gui-coordinate", 0.06),
           ("asr", 0.03)]
    names = ["Paris", "the Eiffel Tower", "red and blue", "1,250", "3.5", "stop sign", "New York", "yes", "no",
             "Golden Gate Bridge", "42 km", "unanswerable"]
    sentences = ["the quick brown fox jumps over the lazy dog", "i am going to the store to buy twenty apples",
                 "the colour of the sky changes at sunset", "we will not stop until the work is done"]
    items = []
    for _ in range(n):
        verifier = rng.choices([name for name, _ in mix], weights=[share for _, share in mix])[0]
        correct = rng.random() < 0.5
        think = _think(rng)
        kwargs = None
        if verifier == "multiple-choice":
            gold = rng.choice("ABCD")
            letter = gold if correct else rng.choice([c for c in "ABCD" if c != gold])
            body = rng.choice([f"\\boxed{{{letter}}}", f"\\boxed{{({letter})}}", f"The answer is {letter}.",
                               f"\\boxed{{{letter}. option text}}"])
        elif verifier == "string-match":
            gold = rng.choice(names)
            pred = gold.upper() if correct else rng.choice(names)
            body = f"\\boxed{{{pred}}}" if rng.random() < 0.8 else f"Answer: {pred}"
            if gold == "unanswerable" and correct:
                body = "\\boxed{It cannot be determined from the image.}"
        elif verifier == "mathruler":
            gold, pred = _math(rng, correct)
            body = f"So the answer is $\\boxed{{{pred}}}$."
        elif verifier == "gui-coordinate":
            x, y = rng.randint(50, 950), rng.randint(50, 950)
            gold = [x - 20, y - 20, x + 20, y + 20] if rng.random() < 0.5 else [x, y]
            dx = rng.randint(-10, 10) if correct else rng.randint(60, 300)
            body = rng.choice([f"<point>[({x + dx},{y})]</point>", f"click(x={x + dx}, y={y})",
                               f"\\boxed{{({x + dx}, {y})}}"])
        else:
            gold = rng.choice(sentences)
            words = gold.split()
            if not correct:
                words[rng.randrange(len(words))] = "banana"
            body = "\\boxed{" + " ".join(words).capitalize() + ".}"
        items.append({"verifier": verifier, "answer": gold, "response": think + body, "verifier_kwargs": kwargs})
    return items


PATHOLOGICAL = [
    ("power tower 9^9^9^9^9", "mathruler", "1", r"\boxed{9^{9^{9^{9^9}}}}"),
    ("huge exponent 2^(10^6)", "mathruler", "1", r"\boxed{2^{1000000}}"),
    ("factorial (10^5)!", "mathruler", "1", r"\boxed{(10^{5})!}"),
    ("deep nesting x500", "mathruler", "1", r"\boxed{" + "(" * 500 + "1" + ")" * 500 + "}"),
    ("1 MB response", "string-match", "paris", "<think>" + "a " * 500_000 + r"</think>\boxed{Paris}"),
    ("50k unbalanced boxes", "mathruler", "1", r"\boxed{" * 50_000),
    ("code payload", "mathruler", "1", r"\boxed{__import__('os').system('touch /tmp/pwned_bench')}"),
    ("sympy-heavy integral", "mathruler", "1", r"\boxed{\int_0^{\infty} e^{-x^2} \, dx}"),
    ("long polynomial", "mathruler", "(x+1)^{12}", r"\boxed{" + "+".join(f"{i}x^{{{i}}}" for i in range(1, 40)) + "}"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="items in the mixed batch (default 20000)")
    ap.add_argument("--workers", type=int, default=2, help="pool worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-item deadline in the pool, seconds (default 3)")
    ap.add_argument("--chunk-size", type=int, default=32, help="items per chunk sent to a worker (default 32)")
    ap.add_argument("--single-n", type=int, default=None, help="items for the single-process run (default: --n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start-method", default="subprocess", choices=["subprocess", "spawn", "forkserver"])
    args = ap.parse_args(argv)

    from omni_rl.verifiers import VerifierPool, score_one_safe

    items = make_items(args.n, args.seed)
    patho = [{"verifier": v, "answer": a, "response": r} for _, v, a, r in PATHOLOGICAL]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # workers import _never_returns from here
    from bench_verifiers import _never_returns  # this file as a module (a function of __main__ cannot reach workers)

    spin = {"verifier": _never_returns, "answer": "x", "response": "x"}

    print(f"batch: {len(items)} items (+{len(patho) + 1} pathological), workers={args.workers}, "
          f"timeout={args.timeout}s, cpus={os.cpu_count()}")

    # --- pool ---------------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    with VerifierPool(args.workers, timeout_s=args.timeout, chunk_size=args.chunk_size,
                      start_method=args.start_method) as pool:
        pool.score(items[:50])  # wait for the workers to be up
        t_start = time.perf_counter() - t0
        t1 = time.perf_counter()
        res, stats = pool.score(items)
        t_pool = time.perf_counter() - t1
        mixed = items[: len(items) // 2] + patho + [spin] + items[len(items) // 2:]
        t2 = time.perf_counter()
        res_m, stats_m = pool.score(mixed)
        t_mixed = time.perf_counter() - t2
    mean = sum(r.reward for r in res) / max(1, len(res))
    print(f"pool start-up: {t_start:.2f}s")
    print(f"pool: {len(items)} items in {t_pool:.2f}s = {len(items) / t_pool:,.0f} scores/s "
          f"(mean reward {mean:.3f}, errors {stats['errors']}, timeouts {stats['timeouts']})")
    print(f"pool + pathological: {len(mixed)} items in {t_mixed:.2f}s = {len(mixed) / t_mixed:,.0f} scores/s "
          f"(errors {stats_m['errors']}, timeouts {stats_m['timeouts']})")
    for name, b in sorted(stats["by_verifier"].items()):
        print(f"  {name:16s} n={b['n']:6d} mean_reward={b['mean_reward']:.3f} errors={b['errors']}")

    # --- single process -----------------------------------------------------------------------------------------
    single = items[: args.single_n] if args.single_n else items
    t3 = time.perf_counter()
    res_s = [score_one_safe(it) for it in single]
    t_single = time.perf_counter() - t3
    assert all(a == b for a, b in zip(res_s, res)), "pool and single-process scores differ"
    print(f"single process: {len(single)} items in {t_single:.2f}s = {len(single) / t_single:,.0f} scores/s "
          "(pool and single-process scores identical)")

    # --- pathological items, one by one in this process ---------------------------------------------------------
    print("pathological items (direct call in this process):")
    for (label, *_), it in zip(PATHOLOGICAL, patho):
        t = time.perf_counter()
        r = score_one_safe(it)
        print(f"  {label:28s} {time.perf_counter() - t:8.3f}s  reward={r.reward:.2f} error={r.error}")
    print(f"  /tmp/pwned_bench exists: {os.path.exists('/tmp/pwned_bench')}")
    return 0


def _never_returns(response, answer, **kwargs):
    """A plugin that never returns: the pool must kill it at the deadline."""
    while True:
        pass


if __name__ == "__main__":
    sys.exit(main())
