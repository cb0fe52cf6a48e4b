#!/usr/bin/env python
"""omni-rl vs TRL: the same GSPO training steps run by omni-rl and by TRL 1.16's GRPOTrainer, side by side.

For each mode, (a) text prompts (tiny `--family-text` model, synthetic `text_math`) and (b) image prompts (tiny
`--family-image` model, synthetic `image_colour` + `image_count` as in `stage=image_rl`), both sides get the SAME checkpoint dir, prompt file, G, max new
tokens, learning rate, optimizer (AdamW 0.9/0.999, no weight decay, constant lr, grad clip 1), steps and prompts per
step, and score with the same reward (`omni_rl.verifiers.reward`). Each side runs in its own child process, so its
peak memory is its own. What TRL is configured with, and the few CPU-forced deviations from a stock TRL run, are in
`omni_rl/bench/trl_baseline.py`'s docstring and docs/benchmarks.md.

Printed: mean step time (first step excluded as warm-up), peak memory of each side's process tree (summed RSS, and
summed PSS, which counts shared pages once) and the ratio omni-rl / TRL (< 1: omni-rl is faster / smaller).

    .venv/bin/python scripts/bench_vs_trl.py                          # text + image, G=16, 6 steps
    .venv/bin/python scripts/bench_vs_trl.py --modes text --steps 3   # quick look
    .venv/bin/python scripts/bench_vs_trl.py --sides trl              # the TRL baseline alone

Exit status 1 if any side failed (its error is printed in the table and the log path given).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from omni_rl.bench.trl_baseline import SIDES, SideSpec, measure_side

MODES = ("text", "image")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per side (the first is warm-up)")
    ap.add_argument("--G", type=int, default=16, help="rollouts per prompt (num_generations / rollout.n)")
    ap.add_argument("--prompts-per-step", type=int, default=4, help="prompts per optimizer step (B)")
    ap.add_argument("--max-tokens", type=int, default=32, help="max new tokens per rollout")
    ap.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (the tiny-model stages' value)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family-text", default="text", help="tiny model family for text prompts")
    ap.add_argument("--family-image", default="vl",
                    help="tiny model family for image prompts ('vl': TRL 1.16 cannot train the 'omni' thinker)")
    ap.add_argument("--text-tasks", nargs="+", default=["text_math"], help="synthetic tasks of the text mode")
    ap.add_argument("--image-tasks", nargs="+", default=["image_colour", "image_count"],
                    help="synthetic tasks of the image mode (default: those of `stage=image_rl`)")
    ap.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                    help="start both sides from the warm-started tiny model omni-rl's stage starts from (default); "
                         "--no-warm-start: random weights, rewards ~0, nearly every group has zero reward variance "
                         "(TRL still runs forward/backward on them, omni-rl skips them), so the times mean little")
    ap.add_argument("--model-text", default=None, help="HF checkpoint dir for text prompts instead of the tiny family")
    ap.add_argument("--model-image", default=None,
                    help="HF checkpoint dir for image prompts instead of the tiny family")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--omni-rl-override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Hydra override for the omni-rl side, after the parity ones (repeatable), e.g. "
                         "rollout.enforce_eager=true for omni-rl's default eager vLLM")
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP_NUM_THREADS of every process of both sides (1: robust on a small shared CPU box)")
    ap.add_argument("--out", default="outputs/bench_vs_trl", help="work dir: prompts, run dirs, logs, results.json")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per side before it is killed")
    return ap.parse_args(argv)


def prepare_model(mode: str, family: str, tasks: list[str], *, warm_start: bool, seed: int,
                  out: Path) -> Path:
    """The checkpoint `omni-rl run stage=<text_rl_1|image_rl> model.family=<family>` starts from: the tiny model,
    warm-started on the benchmark's own `tasks` unless `warm_start` is False (built by omni-rl's own `build_policy`;
    cached). A warm start on other tasks would answer in the wrong vocabulary: every reward 0.1 (format only), most
    groups zero-variance, and omni-rl (which skips those groups) would train on far less than TRL."""
    from omni_rl.config import compose_config
    from omni_rl.controller.builders import build_policy, build_run

    cfg = compose_config([f"stage={'text_rl_1' if mode == 'text' else 'image_rl'}", f"model.family={family}",
                          f"model.seed={seed}", f"model.warm_start={str(warm_start).lower()}",
                          f"data.synthetic_tasks=[{','.join(tasks)}]",
                          f"run.output_dir={out / 'policy'}", "logging.wandb_mode=disabled"])
    return Path(build_policy(cfg, build_run(cfg)).path)


def prepare_prompts(tasks: list[str], *, n: int, seed: int, out: Path) -> Path:
    """The synthetic rows of `tasks` as one JSONL both sides read (media paths absolute)."""
    from omni_rl.bench.trl_baseline import load_prompts, write_prompts_jsonl
    from omni_rl.data.synthetic import generate_suite

    suite = generate_suite(out / "suite", tasks=tasks, n_per_task=n, seed=seed)
    samples = [s for s in load_prompts(suite) if s.source in tasks]
    return write_prompts_jsonl(samples, out / f"prompts_{'-'.join(tasks)}.jsonl")


def run_mode(mode: str, args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    family = args.family_text if mode == "text" else args.family_image
    tasks = args.text_tasks if mode == "text" else args.image_tasks
    given = args.model_text if mode == "text" else args.model_image
    model_dir = (Path(given).resolve() if given is not None
                 else prepare_model(mode, family, tasks, warm_start=args.warm_start, seed=args.seed, out=out / mode))
    n = max(32, args.steps * args.prompts_per_step)
    data_path = prepare_prompts(tasks, n=n, seed=args.seed, out=out / mode)
    results: dict[str, dict[str, Any]] = {}
    for side in args.sides:
        spec = SideSpec(side=side, model_dir=str(model_dir), data_path=str(data_path), family=family,
                        images=mode == "image", G=args.G, max_tokens=args.max_tokens, lr=args.lr, steps=args.steps,
                        prompts_per_step=args.prompts_per_step, seed=args.seed, threads=args.threads,
                        extra_overrides=list(args.omni_rl_override),
                        out_dir=str(out / mode / side.replace("-", "_")))
        print(f"[{mode}] {side}: {args.steps} steps of {args.prompts_per_step} x {args.G} on {model_dir.name} ...",
              flush=True)
        try:
            results[side] = measure_side(spec, timeout_s=args.timeout)
        except Exception as e:  # noqa: BLE001 - one failed side is reported in the table, the other still runs
            results[side] = {"side": side, "error": f"{type(e).__name__}: {e}"}
            print(f"[{mode}] {side} FAILED: {str(e).splitlines()[0]}", flush=True)
    return results


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _mean(xs: list[Any]) -> float:
    vals = [float(x) for x in xs if isinstance(x, (int, float))]
    return sum(vals) / len(vals) if vals else math.nan


def _ratio(results: dict[str, dict[str, Any]], key: str) -> str:
    a, b = results.get("omni-rl", {}).get(key), results.get("trl", {}).get(key)
    return _fmt(a / b, ".2f") if isinstance(a, float) and isinstance(b, float) and b > 0 else "-"


COLUMNS = ("mode", "side", "mean step s", "warm-up s", "setup s", "peak RSS MiB", "peak PSS MiB", "main RSS MiB",
           "reward first->last", "resp len", "zero-var groups")


def side_row(mode: str, r: dict[str, Any]) -> list[str]:
    rewards = r["rewards"]
    return [mode, r["side"], _fmt(r["mean_step_s"], ".3f"), _fmt(r["warmup_step_s"], ".2f"), _fmt(r["setup_s"], ".1f"),
            _fmt(r["peak_tree_rss_mib"], ".0f"), _fmt(r["peak_tree_pss_mib"], ".0f"),
            _fmt(r["peak_main_rss_mib"], ".0f"),
            f"{_fmt(rewards[0], '.3f')}->{_fmt(rewards[-1], '.3f')}" if rewards else "-",
            _fmt(_mean(r["completion_len_mean"]), ".1f"), _fmt(_mean(r["zero_std_group_frac"]), ".2f")]


def print_table(all_results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    rows: list[list[str]] = []
    failures: list[str] = []
    for mode, results in all_results.items():
        for side in args.sides:
            r = results[side]
            if "error" in r:
                rows.append([mode, side, "FAILED"] + [""] * (len(COLUMNS) - 3))
                failures.append(f"{mode}/{side}: {r['error']}")
            else:
                rows.append(side_row(mode, r))
        if len(args.sides) == 2:
            rows.append([mode, "omni-rl/TRL", _ratio(results, "mean_step_s"), "", "",
                         _ratio(results, "peak_tree_rss_mib"), _ratio(results, "peak_tree_pss_mib"),
                         _ratio(results, "peak_main_rss_mib"), "", "", ""])
    print(f"\n== omni-rl vs TRL {_trl_version()} GRPOTrainer (GSPO): G={args.G}, {args.prompts_per_step} prompts/step, "
          f"<= {args.max_tokens} new tokens, {args.steps} steps (mean excludes the first), lr {args.lr}, "
          f"{args.threads} thread(s) per process ==")
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    for row in [list(COLUMNS), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print("peak RSS / PSS: summed over the side's process tree (PSS counts shared pages once); main RSS: the side's "
          "main process (ru_maxrss). resp len: mean response tokens; zero-var groups: fraction of groups whose G "
          "rewards are all equal (TRL trains on them with advantage 0, omni-rl drops them).")
    print("\nmean step-time split (s; same steps as the mean): generate / verify / refit / other (TRL: batching, "
          "forward/backward, optimizer; omni-rl: render, advantages, train)")
    for mode, results in all_results.items():
        for side in args.sides:
            split = results[side].get("time_split_mean_s")
            if split:
                print(f"  {mode:<6} {side:<8} " + " / ".join(_fmt(split[f"time/{k}"], ".3f") for k in
                                                          ("generate", "verify", "refit", "other")))
    for f in failures:
        print(f"FAILED {f}")


def _trl_version() -> str:
    from importlib.metadata import version

    return version("trl")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    for mode in args.modes:
        shutil.rmtree(out / mode, ignore_errors=True)
    all_results = {mode: run_mode(mode, args, out) for mode in args.modes}
    (out / "results.json").write_text(json.dumps(all_results, indent=2, default=str))
    print_table(all_results, args)
    print(f"\nfull results (per-step times, rewards, TRL logs, omni-rl time split): {out / 'results.json'}")
    return 1 if any("error" in r for res in all_results.values() for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
