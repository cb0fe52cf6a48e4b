#!/usr/bin/env python
"""Learning figures of a training stage (RL or preference), as a distribution over seeds and thread counts (min / median / max).

One run of a stage is deterministic on one machine, but float reductions differ between CPUs (kernels, vector width,
thread count), and a few hundred RL steps amplify that into a different trajectory. So a learning claim here is a
sweep: `--seeds K` runs the stage K times, run k with `run.seed = data.seed = model.seed = k` (another random model,
another warm start, other training and held-out images) and with `OMP_NUM_THREADS` cycling through `--threads`
(default 1 2), each run in its own process with the sweep's own model cache (`<out>/cache`, so every warm start is
built under that run's thread count; a rerun of the same sweep, or `--cache` of another sweep of the same seeds,
reuses it). Each run is `omni-rl run stage=...`.

Figures per run, then min / median / max over the runs:
  reward rise          mean reward of the last --window steps minus that of the first --window steps
  reward/<source>      the same, per source (task)
  held-out rise        greedy reward on the held-out suite at the last evaluation minus at step 0 (`run.eval_every`)
  held-out/<source>    the same, per source
  accuracy / margin    preference stages (mpo): the same windows of mpo/accuracy and mpo/reward_margin
  policy/<source>      with --policy-n N: the mean reward of N sampled responses per training row (`omni-rl filter
                       filter.score=reward`), final policy minus initial policy. Unlike the reward windows it does not
                       depend on how fast a task is learned (a task solved within its first 20 draws shows a small
                       window rise), and unlike the held-out figures it is measured on the rows the stage trains on
  end reward, held-out end, wall time (model build + warm start included when the cache is cold)

    .venv/bin/python scripts/bench_train.py                                  # one default image_rl run
    .venv/bin/python scripts/bench_train.py --fresh-cache                    # ... timing the model build + warm start
    .venv/bin/python scripts/bench_train.py --seeds 5                        # the sweep behind the docs, the CI test
    .venv/bin/python scripts/bench_train.py --stage text_rl_1 --seeds 5
    .venv/bin/python scripts/bench_train.py --stage omni_rl --seeds 5 --seed-keys run.seed --policy-n 8  # per source
    .venv/bin/python scripts/bench_train.py --stage mpo --seeds 5 --window 10  # preference accuracy, held-out
    .venv/bin/python scripts/bench_train.py --encoder-once                   # + encoder-once on/off step time

The sweep's table is also written to `<out>/sweep.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean, median

ROOT = Path(__file__).resolve().parents[1]


def run_stage(overrides: list[str], out: Path, *, threads: int | None, cache: Path | None) -> tuple[list[dict], float]:
    """`omni-rl run` in a fresh process; returns the metrics rows and the wall time (start-up included)."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if cache is not None:
        env["OMNI_RL_CACHE"] = str(cache)
    cmd = [sys.executable, "-m", "omni_rl.cli", "run", *overrides, "logging.progress=false", f"run.output_dir={out}"]
    t0 = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"run failed (exit {p.returncode}): {' '.join(cmd)}\nlog: {out.parent / f'{out.name}.log'}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()], wall


def window_mean(rows: list[dict], key: str, window: int, first: bool) -> float | None:
    vals = [r[key] for r in rows if key in r]  # a step may miss a source
    w = max(1, min(window, len(vals) // 3 or 1))
    pick = vals[:w] if first else vals[-w:]
    return fmean(pick) if pick else None


def figures(rows: list[dict], window: int) -> dict[str, float]:
    """The learning figures of one run (see the module docstring)."""
    out: dict[str, float] = {}
    sources = sorted({k.split("/", 2)[2] for r in rows for k in r if k.startswith("reward/source/")})
    for name, key in [("reward", "reward/mean"), *((f"reward/{s}", f"reward/source/{s}") for s in sources)]:
        start, end = window_mean(rows, key, window, True), window_mean(rows, key, window, False)
        if start is not None and end is not None:
            out[f"{name} rise"] = end - start
            if name == "reward":
                out["reward start"], out["reward end"] = start, end
    for name, key in (("accuracy", "mpo/accuracy"), ("margin", "mpo/reward_margin")):  # preference stages
        start, end = window_mean(rows, key, window, True), window_mean(rows, key, window, False)
        if start is not None and end is not None:
            out[f"{name} rise"] = end - start
            out[f"{name} start"], out[f"{name} end"] = start, end
    evals = [r for r in rows if "eval/mean" in r]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        out["held-out rise"] = last["eval/mean"] - first["eval/mean"]
        out["held-out start"], out["held-out end"] = first["eval/mean"], last["eval/mean"]
        for k in sorted(first):
            if k.startswith("eval/source/") and k in last:
                out[f"held-out/{k.split('/', 2)[2]} rise"] = last[k] - first[k]
    return out


def run_filter(overrides: list[str], out: Path, *, cache: Path | None) -> dict[str, float]:
    """`omni-rl filter ... filter.score=reward` (a finished dir is resumed at once): the mean reward of the sampled
    responses per source (report.json's `mean_score`)."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    if cache is not None:
        env["OMNI_RL_CACHE"] = str(cache)
    cmd = [sys.executable, "-m", "omni_rl.cli", "filter", *overrides, "filter.score=reward",
           "filter.band_preset=keep_all", "logging.progress=false", f"run.output_dir={out}"]
    with open(out.parent / f"{out.name}.log", "w") as log:
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit(f"filter failed (exit {p.returncode}): {' '.join(cmd)}\nlog: {out.parent / f'{out.name}.log'}")
    report = json.loads((out / "report.json").read_text())
    return {src: group["mean_score"] for src, group in report["by_source"].items() if group["mean_score"] is not None}


def policy_figures(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    out = {f"policy/{src} rise": end[src] - start[src] for src in start if src in end}
    out["policy start (all rows)"] = fmean(start.values())
    return out


def print_single(rows: list[dict], wall: float, window: int, stage: str) -> None:
    curve = "reward/mean" if any("reward/mean" in r for r in rows) else "mpo/accuracy"
    rewards = [r[curve] for r in rows if curve in r]
    block = max(1, len(rewards) // 12)
    print(f"\n== {stage}, {len(rewards)} steps ==")
    print(f"{curve} curve (means of {block}-step blocks): "
          + " ".join(f"{fmean(rewards[i:i + block]):.2f}" for i in range(0, len(rewards), block)))
    evals = [(r["step"], r["eval/mean"]) for r in rows if "eval/mean" in r]
    if evals:
        print("held-out greedy eval (step: reward): " + " ".join(f"{st}: {v:.2f}" for st, v in evals))
    for k, v in figures(rows, window).items():
        print(f"  {k:32s} {v:+.3f}" if "rise" in k else f"  {k:32s} {v:.3f}")
    steps_s = sum(r.get("time/step", 0.0) + r.get("time/eval", 0.0) for r in rows)
    print(f"wall time {wall:.0f} s ({wall / 60:.1f} min), of which {wall - steps_s:.0f} s outside the steps "
          "(model build / warm start when not cached, vLLM + Ray start-up, plots)")
    split = {k: fmean(r[k] for r in rows if k in r) for k in
             ("time/render", "time/generate", "time/verify", "time/train", "time/refit", "time/build", "time/step")
             if any(k in r for r in rows)}
    print("mean step-time split: " + ", ".join(f"{k.split('/')[1]} {v:.2f}s" for k, v in split.items()))


def summarise(per_run: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = [k for k in per_run[0] if all(k in f for f in per_run)]
    return {k: {"min": min(f[k] for f in per_run), "median": median(f[k] for f in per_run),
                "max": max(f[k] for f in per_run)} for k in keys}


def encoder_once_ratio(base: list[str], out: Path, steps: int) -> None:
    times = {}
    for flag in ("true", "false"):
        rows, _ = run_stage([*base, f"run.steps={steps}", f"trainer.encoder_once={flag}", "logging.plot=false",
                             "run.eval_every=0"], out / f"encoder_once_{flag}", threads=None, cache=None)
        times[flag] = fmean(r["time/train"] for r in rows[1:] or rows)
    print(f"\n== encoder once per unique media ==\ntime/train per step: on {times['true']:.3f}s, "
          f"off {times['false']:.3f}s -> speedup x{times['false'] / times['true']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="image_rl", help="configs/stage/<name>.yaml (default image_rl)")
    ap.add_argument("--steps", type=int, default=None, help="override run.steps (default: the stage's)")
    ap.add_argument("--seeds", type=int, default=0,
                    help="K > 0: a sweep of K runs (seeds --first-seed .. +K-1), min / median / max of every figure")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="OMP_NUM_THREADS per process, cycled over the sweep's runs (default 1 2)")
    ap.add_argument("--seed-keys", nargs="+", default=["run.seed", "data.seed", "model.seed"],
                    help="the config keys set to k in run k of a sweep (default run.seed data.seed model.seed: "
                         "another model, warm start and suite per run; run.seed alone keeps them and varies the "
                         "data order, sampling and initialisation)")
    ap.add_argument("--window", type=int, default=20, help="steps averaged for the start / end reward (default 20)")
    ap.add_argument("--out", default="outputs/bench_train", help="run dirs, logs, the sweep's cache and sweep.json")
    ap.add_argument("--cache", default=None,
                    help="the sweep's OMNI_RL_CACHE (default <out>/cache); share it between sweeps of the same seeds")
    ap.add_argument("--fresh-cache", action="store_true",
                    help="single run: an empty model cache, so the wall time includes building + warm-starting")
    ap.add_argument("--encoder-once", action="store_true", help="also time trainer.encoder_once=true vs false")
    ap.add_argument("--encoder-steps", type=int, default=4, help="steps of each encoder-once comparison run")
    ap.add_argument("--policy-n", type=int, default=0,
                    help="N > 0: also score the initial and the final policy with N sampled responses per training "
                         "row (omni-rl filter) and report the per-source rise (policy/<source>)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = [f"stage={args.stage}", *args.overrides] + ([f"run.steps={args.steps}"] if args.steps else [])
    if args.seeds <= 0:
        cache = Path(tempfile.mkdtemp(prefix="omni_rl_bench_cache_")) if args.fresh_cache else None
        rows, wall = run_stage(base, out / "main", threads=None, cache=cache)
        print_single(rows, wall, args.window, args.stage)
    else:
        per_run = []
        cache = Path(args.cache).resolve() if args.cache else out / "cache"
        for k in range(args.first_seed, args.first_seed + args.seeds):
            threads = args.threads[(k - args.first_seed) % len(args.threads)]
            seeds = [f"{key}={k}" for key in args.seed_keys]
            rows, wall = run_stage([*base, *seeds], out / f"seed{k}", threads=threads, cache=cache)
            f = {**figures(rows, args.window), "wall time s": wall}
            if args.policy_n > 0:  # the initial policy: one per model / data seed (run.seed only changes sampling)
                fixed = [s for s in seeds if not s.startswith("run.seed=")]
                start_dir = out / ("policy_start" + "".join(f"_{s.split('=')[0].split('.')[0]}{k}" for s in fixed))
                n = [f"filter.n={args.policy_n}"]
                start = run_filter([*base, *fixed, *n], start_dir, cache=cache)
                end = run_filter([*base, *seeds, *n, f"model.path={out / f'seed{k}' / 'final'}"],
                                 out / f"seed{k}_policy", cache=cache)
                f.update(policy_figures(start, end))
            per_run.append(f)
            print(f"seed {k} (threads {threads}, {len(rows)} steps, {wall:.0f} s): "
                  + ", ".join(f"{n} {v:+.3f}" for n, v in f.items() if "rise" in n), flush=True)
        table = summarise(per_run)
        print(f"\n== {args.stage}: {args.seeds} seeds x threads {args.threads}, window {args.window} ==")
        print(f"{'figure':34s} {'min':>8s} {'median':>8s} {'max':>8s}")
        for k, v in table.items():
            print(f"{k:34s} {v['min']:8.3f} {v['median']:8.3f} {v['max']:8.3f}")
        (out / "sweep.json").write_text(json.dumps({"stage": args.stage, "overrides": base, "threads": args.threads,
                                                    "runs": per_run, "summary": table}, indent=2))
        print(f"written: {out / 'sweep.json'}")
    if args.encoder_once:
        encoder_once_ratio(base, out, args.encoder_steps)


if __name__ == "__main__":
    main()
