#!/usr/bin/env python
"""Benchmark + learning check of the default image RL stage (`omni-rl run stage=image_rl`).

Prints: the reward curve (means over blocks of steps), the held-out greedy eval curve (when `run.eval_every`), start / end reward (mean over the first / last `--window`
steps: one step is only 8 prompts, so single steps are noisy), the first step whose trailing-window mean is
>= start + 0.3 and the wall time to reach it, the total wall time (model build + warm start + vLLM start-up
included), the step-time split (render / generate / verify / train / refit), and the encoder-once speedup
(time/train of two short side-by-side runs with trainer.encoder_once=true / false, same seed and data, one after the
other in this process).

    .venv/bin/python scripts/bench_train.py                      # default run + encoder-once comparison
    .venv/bin/python scripts/bench_train.py --fresh-cache        # also time the model build + warm start
    .venv/bin/python scripts/bench_train.py --steps 10 --skip-encoder-once
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from statistics import fmean


def run(overrides: list[str]) -> tuple[list[dict], float]:
    from omni_rl.config import compose_config
    from omni_rl.controller import run_stage

    cfg = compose_config(overrides)
    shutil.rmtree(cfg.run.output_dir, ignore_errors=True)
    t0 = time.perf_counter()
    run_dir = run_stage(cfg)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return rows, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="image_rl")
    ap.add_argument("--steps", type=int, default=None, help="override run.steps (default: the stage's)")
    ap.add_argument("--out", default="outputs/bench_train")
    ap.add_argument("--skip-encoder-once", action="store_true", help="skip the encoder-once on/off comparison")
    ap.add_argument("--encoder-steps", type=int, default=4, help="steps of each encoder-once comparison run")
    ap.add_argument("--window", type=int, default=20, help="steps averaged for the start / end reward (default 20)")
    ap.add_argument("--fresh-cache", action="store_true",
                    help="use an empty OMNI_RL_CACHE, so the wall time includes building + warm-starting the model")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = ap.parse_args()
    if args.fresh_cache:
        os.environ["OMNI_RL_CACHE"] = tempfile.mkdtemp(prefix="omni_rl_bench_cache_")

    base = [f"stage={args.stage}", "logging.progress=false", *args.overrides]
    if args.steps:
        base.append(f"run.steps={args.steps}")
    rows, wall = run([*base, f"run.output_dir={args.out}/main"])
    rewards = [r["reward/mean"] for r in rows]
    w = max(1, min(args.window, len(rewards) // 3 or 1))
    start, end = fmean(rewards[:w]), fmean(rewards[-w:])
    block = max(1, len(rewards) // 12)
    curve = [fmean(rewards[i:i + block]) for i in range(0, len(rewards), block)]
    print(f"\n== learning ({args.stage}, {len(rows)} steps) ==")
    print(f"reward curve (means of {block}-step blocks): {' '.join(f'{x:.2f}' for x in curve)}")
    print(f"reward start (mean of first {w} steps) {start:.3f} -> end (mean of last {w}) {end:.3f}: "
          f"delta {end - start:+.3f}")
    evals = [(r["step"], r["eval/mean"]) for r in rows if "eval/mean" in r]
    if evals:
        print("held-out greedy eval (step: reward): " + " ".join(f"{st}: {v:.2f}" for st, v in evals))
        print(f"held-out eval {evals[0][1]:.3f} (step {evals[0][0]}) -> {evals[-1][1]:.3f} (step {evals[-1][0]}): "
              f"delta {evals[-1][1] - evals[0][1]:+.3f}")
    startup = wall - sum(r["time/step"] + r.get("time/eval", 0.0) for r in rows)  # model build / warm start / vLLM + Ray start-up, plots
    elapsed = startup
    for i, r in enumerate(rows):
        elapsed += r["time/step"] + r.get("time/eval", 0.0)
        if i + 1 >= w and fmean(rewards[i + 1 - w: i + 1]) >= start + 0.3:
            print(f"+0.3 over start first reached at step {i} (trailing {w}-step mean), "
                  f"{elapsed:.0f} s after launch")
            break
    else:
        print("+0.3 over start: not reached")
    print(f"wall time {wall:.1f} s ({wall / 60:.1f} min), of which {startup:.1f} s outside the steps "
          "(model build / warm start when not cached, vLLM + Ray start-up, plots)")
    split = {key: fmean(r.get(key, 0.0) for r in rows) for key in
             ("time/render", "time/generate", "time/verify", "time/train", "time/refit", "time/step")}
    print("mean step-time split: " + ", ".join(f"{k.split('/')[1]} {v:.2f}s" for k, v in split.items()))

    if not args.skip_encoder_once:
        times = {}
        for flag in ("true", "false"):
            rows_f, _ = run([*base, f"run.steps={args.encoder_steps}", f"trainer.encoder_once={flag}",
                             f"run.output_dir={args.out}/encoder_once_{flag}", "logging.plot=false"])
            times[flag] = fmean(r["time/train"] for r in rows_f[1:] or rows_f)
        print(f"\n== encoder once per unique media ==\ntime/train per step: on {times['true']:.3f}s, "
              f"off {times['false']:.3f}s -> speedup x{times['false'] / times['true']:.2f}")


if __name__ == "__main__":
    main()
