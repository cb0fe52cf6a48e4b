#!/usr/bin/env python
"""omni-rl vs TRL: the same GSPO training steps run by omni-rl and by TRL 1.16's GRPOTrainer, side by side; with
`--modes mpo`, the same MPO preference steps run by omni-rl's `stage=mpo` and by TRL 1.16's DPOTrainer.

For each GSPO mode, (a) text prompts (tiny `--family-text` model, synthetic `text_math`) and (b) image prompts (tiny
`--family-image` model, synthetic `image_colour` + `image_count` as in `stage=image_rl`), both sides get the SAME
checkpoint dir, prompt file, G, max new tokens, learning rate, optimizer (AdamW 0.9/0.999, no weight decay, constant
lr, grad clip 1), steps and prompts per step, and score with the same reward (`omni_rl.verifiers.reward`). Each side
runs in its own child process, so its peak memory is its own. What TRL is configured with, and the few CPU-forced
deviations from a stock TRL run, are in `omni_rl/bench/trl_baseline.py`'s docstring and docs/benchmarks.md.

MPO modes (`mpo_text`, `mpo_image`; `mpo` = both): pairs built once by `omni-rl build-preferences` with the same
checkpoint on the same tasks (`--pairs-text` / `--pairs-image` to give a pairs.jsonl), `--pairs-per-step` pairs per
step in omni-rl's order on both sides, the same beta and loss weights (`--mpo-preset`, or `--beta` / `--w-*`),
AdamW (`--lr`, `--mpo-betas`, `--mpo-weight-decay`, constant lr, clip 1). What TRL runs and how the data reach it
are in `omni_rl/bench/trl_mpo.py`'s docstring.

Printed: mean step time (first step excluded as warm-up), peak memory of each side's process tree (summed RSS, and
summed PSS, which counts shared pages once) and the ratio omni-rl / TRL (< 1: omni-rl is faster / smaller). MPO
modes also print both sides' losses of the first two steps (delta = 0 on both there), whether both trained on
identical token ids, and TRL's own loss code against omni-rl's objective on identical log-probs.

    .venv/bin/python scripts/bench_vs_trl.py                          # text + image, G=16, 6 steps
    .venv/bin/python scripts/bench_vs_trl.py --modes text --steps 3   # quick look
    .venv/bin/python scripts/bench_vs_trl.py --sides trl              # the TRL baseline alone
    .venv/bin/python scripts/bench_vs_trl.py --modes mpo              # MPO, text + image pairs, 16 pairs/step

Exit status 1 if any side failed (its error is printed in the table and the log path given).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from omni_rl.bench.trl_baseline import SIDES, VLLM_CPU_ENV, SideSpec, measure_side, run_logged
from omni_rl.bench.trl_mpo import TRL_FORMATS, MPOSideSpec, measure_mpo_side
from omni_rl.config.schema import MPO_PRESETS

GSPO_MODES = ("text", "image")
MPO_MODES = ("mpo_text", "mpo_image")
MODES = GSPO_MODES + MPO_MODES
MODE_ALIASES = {"mpo": MPO_MODES}


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
    ap.add_argument("--modes", nargs="+", choices=[*MODES, *MODE_ALIASES], default=list(GSPO_MODES),
                    help="GSPO: text, image (default); MPO: mpo_text, mpo_image, or mpo for both")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--omni-rl-override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Hydra override for the omni-rl side, after the parity ones (repeatable), e.g. "
                         "rollout.enforce_eager=true for omni-rl's default eager vLLM")
    mpo = ap.add_argument_group("MPO modes")
    mpo.add_argument("--pairs-per-step", type=int, default=16, help="pairs per optimizer step")
    mpo.add_argument("--pairs-per-micro-batch", type=int, default=8,
                     help="pairs per forward/backward (omni-rl trainer.micro_batch_size = 2x this; TRL "
                          "per_device_train_batch_size, gradient accumulation over the rest of the step)")
    mpo.add_argument("--mpo-preset", choices=sorted(MPO_PRESETS), default="nemotron_omni",
                     help="beta and loss weights; --beta / --w-pref / --w-quality / --w-sft override them")
    for name in ("beta", "w-pref", "w-quality", "w-sft"):
        mpo.add_argument(f"--{name}", type=float, default=None)
    mpo.add_argument("--mpo-betas", type=float, nargs=2, default=[0.9, 0.98], help="AdamW betas (stage=mpo's)")
    mpo.add_argument("--mpo-weight-decay", type=float, default=0.1, help="AdamW weight decay (stage=mpo's)")
    mpo.add_argument("--pairs-text", default=None, help="pairs.jsonl for mpo_text instead of building them")
    mpo.add_argument("--pairs-image", default=None, help="pairs.jsonl for mpo_image instead of building them")
    mpo.add_argument("--pair-candidates", type=int, default=8, help="preferences.n when building pairs")
    mpo.add_argument("--pair-prompts-per-task", type=int, default=32,
                     help="data.synthetic_per_task when building pairs")
    mpo.add_argument("--trl-format", choices=TRL_FORMATS, default="standard",
                     help="standard: prompt pre-rendered by omni-rl's chat template, response + EOS (identical "
                          "token ids on both sides); conversational: TRL's chat-template path (one more token)")
    sized = ap.add_argument_group("image size (GSPO image mode)")
    sized.add_argument("--image-size", nargs="+", default=None, metavar="WxH|S",
                       help="run the image mode once per size (e.g. 80x64 224 448; S = SxS): every prompt image "
                            "resized to it, a vision tower of --vision-depth x --vision-hidden, and a processor "
                            "that keeps the image at full size (28 px per LM token), the same on both sides")
    sized.add_argument("--vision-depth", type=int, default=8, help="vision blocks with --image-size")
    sized.add_argument("--vision-hidden", type=int, default=128, help="vision width with --image-size")
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP_NUM_THREADS of every process of both sides (1: robust on a small shared CPU box)")
    ap.add_argument("--out", default="outputs/bench_vs_trl", help="work dir: prompts, run dirs, logs, results.json")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per side before it is killed")
    args = ap.parse_args(argv)
    args.modes = list(dict.fromkeys(m for mode in args.modes for m in MODE_ALIASES.get(mode, (mode,))))
    if args.image_size:
        sizes = [f"image@{'x'.join(map(str, parse_size(v)))}" for v in args.image_size]
        args.modes = [m for mode in args.modes for m in (sizes if mode == "image" else [mode])]
    return args


def parse_size(value: str) -> tuple[int, int]:
    """'80x64' -> (80, 64); '224' -> (224, 224)."""
    try:
        w, _, h = value.lower().partition("x")
        size = (int(w), int(h or w))
    except ValueError:
        raise SystemExit(f"--image-size {value!r}: give WxH (80x64) or one side S (224)") from None
    if min(size) < 28:
        raise SystemExit(f"--image-size {value!r}: each side must be >= 28 px (one LM token)")
    return size


def resized_prompts(data_path: Path, size: tuple[int, int], out: Path) -> Path:
    """The prompts of `data_path` with every image resized to `size` (W, H) and written under `out/media`."""
    from PIL import Image

    from omni_rl.bench.trl_baseline import load_prompts, write_prompts_jsonl

    samples = load_prompts(data_path)
    (out / "media").mkdir(parents=True, exist_ok=True)
    n = 0
    for s in samples:
        for m in s.messages:
            for part in m["content"] if isinstance(m["content"], list) else []:
                if part.get("type") == "image":
                    dst = out / "media" / f"{n:05d}.png"
                    with Image.open(part["image"]) as img:
                        img.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(dst)
                    part["image"] = str(dst)
                    n += 1
    return write_prompts_jsonl(samples, out / "prompts.jsonl")


def prepare_model(mode: str, family: str, tasks: list[str], *, warm_start: bool, seed: int,
                  out: Path) -> Path:
    """The checkpoint `omni-rl run stage=<text_rl_1|image_rl> model.family=<family>` starts from: the tiny model,
    warm-started on the benchmark's own `tasks` unless `warm_start` is False (built by omni-rl's own `build_policy`;
    cached). A warm start on other tasks would answer in the wrong vocabulary: every reward 0.1 (format only), most
    groups zero-variance, and omni-rl (which skips those groups) would train on far less than TRL."""
    from omni_rl.config import compose_config
    from omni_rl.wiring.policy import build_policy
    from omni_rl.wiring.run import build_run

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
    """One GSPO mode ("text", "image", or "image@WxH": image prompts resized to W x H, a --vision-depth x
    --vision-hidden vision tower) run by each side."""
    mode, _, size_str = mode.partition("@")
    label = f"{mode}@{size_str}" if size_str else mode
    family = args.family_text if mode == "text" else args.family_image
    tasks = args.text_tasks if mode == "text" else args.image_tasks
    given = args.model_text if mode == "text" else args.model_image
    model_dir = (Path(given).resolve() if given is not None
                 else prepare_model(mode, family, tasks, warm_start=args.warm_start, seed=args.seed, out=out / mode))
    n = max(32, args.steps * args.prompts_per_step)
    data_path = prepare_prompts(tasks, n=n, seed=args.seed, out=out / mode)
    if size_str:
        from omni_rl.bench.models import scaled_vl_model

        size = parse_size(size_str)
        model_dir = scaled_vl_model(model_dir, out / "scaled_models", depth=args.vision_depth,
                                    hidden=args.vision_hidden, max_pixels=size[0] * size[1], seed=args.seed)
        data_path = resized_prompts(data_path, size, out / label)
        mode = label
    results: dict[str, dict[str, Any]] = {}
    for side in args.sides:
        spec = SideSpec(side=side, model_dir=str(model_dir), data_path=str(data_path), family=family,
                        images=mode.startswith("image"), G=args.G, max_tokens=args.max_tokens, lr=args.lr,
                        steps=args.steps, prompts_per_step=args.prompts_per_step, seed=args.seed, threads=args.threads,
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


def mpo_settings(args: argparse.Namespace) -> dict[str, float]:
    """beta / w_pref / w_quality / w_sft of both MPO sides: the preset's, overridden by --beta / --w-*."""
    given = {"beta": args.beta, "w_pref": args.w_pref, "w_quality": args.w_quality, "w_sft": args.w_sft}
    return {k: float(v if v is not None else MPO_PRESETS[args.mpo_preset][k]) for k, v in given.items()}


def prepare_pairs(mode: str, family: str, tasks: list[str], model_dir: Path, *, n: int, per_task: int, seed: int,
                  threads: int, out: Path, timeout_s: float) -> Path:
    """pairs.jsonl of `omni-rl build-preferences` (child process) with the benchmark's checkpoint on `tasks`: n
    candidates per prompt from the policy both sides start from, `per_task` synthetic prompts per task. Kept under
    `out` (not deleted between runs) and reused when the same job finished before."""
    job = out / f"{model_dir.name}-n{n}-k{per_task}-seed{seed}"
    if (job / "report.json").is_file() and (job / "pairs.jsonl").is_file():
        return job / "pairs.jsonl"
    job.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "omni_rl.cli", "build-preferences",
           f"stage={'text_rl_1' if mode == 'mpo_text' else 'image_rl'}", f"model.family={family}",
           f"model.path={model_dir}", "model.warm_start=false", f"data.synthetic_tasks=[{','.join(tasks)}]",
           f"data.synthetic_per_task={per_task}", f"data.seed={seed}", f"run.seed={seed}", f"preferences.n={n}",
           f"run.output_dir={job}", "rollout.num_workers=1", "logging.wandb_mode=disabled"]
    env = {**os.environ, **{k: v for k, v in VLLM_CPU_ENV.items() if k not in os.environ},
           "OMP_NUM_THREADS": str(threads)}
    log_path = job.parent / f"{job.name}.log"
    returncode = run_logged(cmd, env=env, log_path=log_path, timeout_s=timeout_s)
    if returncode != 0 or not (job / "pairs.jsonl").is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"building pairs failed (exit {returncode}); log {log_path}, tail:\n{tail}")
    return job / "pairs.jsonl"


def run_mpo_mode(mode: str, args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    text = mode == "mpo_text"
    family = args.family_text if text else args.family_image
    tasks = args.text_tasks if text else args.image_tasks
    given_model = args.model_text if text else args.model_image
    given_pairs = args.pairs_text if text else args.pairs_image
    model_dir = (Path(given_model).resolve() if given_model is not None
                 else prepare_model("text" if text else "image", family, tasks, warm_start=args.warm_start,
                                    seed=args.seed, out=out / mode))
    if given_pairs is not None:
        pairs_path = Path(given_pairs).resolve()
    else:
        print(f"[{mode}] building pairs with {model_dir.name} ({args.pair_candidates} candidates x "
              f"{args.pair_prompts_per_task} prompts per task of {', '.join(tasks)}) ...", flush=True)
        pairs_path = prepare_pairs(mode, family, tasks, model_dir, n=args.pair_candidates,
                                   per_task=args.pair_prompts_per_task, seed=args.seed, threads=args.threads,
                                   out=out / "pairs" / mode, timeout_s=args.timeout)
    settings = mpo_settings(args)
    results: dict[str, dict[str, Any]] = {}
    for side in args.sides:
        spec = MPOSideSpec(side=side, model_dir=str(model_dir), pairs_path=str(pairs_path), family=family,
                           images=not text, steps=args.steps, pairs_per_step=args.pairs_per_step,
                           pairs_per_micro_batch=args.pairs_per_micro_batch, lr=args.lr, betas=list(args.mpo_betas),
                           weight_decay=args.mpo_weight_decay, grad_clip=1.0, seed=args.seed,
                           out_dir=str(out / mode / side.replace("-", "_")), trl_format=args.trl_format,
                           threads=args.threads, extra_overrides=list(args.omni_rl_override), **settings)
        print(f"[{mode}] {side}: {args.steps} steps of {args.pairs_per_step} pairs from {pairs_path} ...", flush=True)
        try:
            results[side] = measure_mpo_side(spec, timeout_s=args.timeout)
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


COLUMNS = ("mode", "side", "mean step s", "warm-up s", "setup s", "peak RSS MiB", "peak PSS MiB", "fixed PSS MiB",
           "steps add MiB", "main RSS MiB", "reward first->last", "resp len", "zero-var groups")


def side_row(mode: str, r: dict[str, Any]) -> list[str]:
    rewards = r["rewards"]
    return [mode, r["side"], _fmt(r["mean_step_s"], ".3f"), _fmt(r["warmup_step_s"], ".2f"), _fmt(r["setup_s"], ".1f"),
            _fmt(r["peak_tree_rss_mib"], ".0f"), _fmt(r["peak_tree_pss_mib"], ".0f"),
            _fmt(r.get("fixed_tree_pss_mib"), ".0f"), _fmt(r.get("step_growth_pss_mib"), ".0f"),
            _fmt(r["peak_main_rss_mib"], ".0f"),
            f"{_fmt(rewards[0], '.3f')}->{_fmt(rewards[-1], '.3f')}" if rewards else "-",
            _fmt(_mean(r["completion_len_mean"]), ".1f"), _fmt(_mean(r["zero_std_group_frac"]), ".2f")]


def print_table(all_results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    """The GSPO modes' table; returns the failures."""
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
                         _ratio(results, "fixed_tree_pss_mib"), _ratio(results, "step_growth_pss_mib"),
                         _ratio(results, "peak_main_rss_mib"), "", "", ""])
    print(f"\n== omni-rl vs TRL {_trl_version()} GRPOTrainer (GSPO): G={args.G}, {args.prompts_per_step} prompts/step, "
          f"<= {args.max_tokens} new tokens, {args.steps} steps (mean excludes the first), lr {args.lr}, "
          f"{args.threads} thread(s) per process ==")
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    for row in [list(COLUMNS), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print("peak RSS / PSS: summed over the side's process tree (PSS counts shared pages once); fixed PSS: the peak "
          "before the first step began (model, vLLM engine, processes); steps add: peak PSS minus that (activations, "
          "gradients, optimizer state, batches); main RSS: the side's main process (ru_maxrss). resp len: mean "
          "response tokens; zero-var groups: fraction of groups whose G rewards are all equal (both sides train on "
          "them with advantage 0: the omni-rl side sets algorithm.train_zero_variance_groups=true).")
    print("\nmean step-time split (s; same steps as the mean): generate / verify / refit / other (TRL: batching, "
          "forward/backward, optimizer; omni-rl: render, advantages, train)")
    for mode, results in all_results.items():
        for side in args.sides:
            split = results[side].get("time_split_mean_s")
            if split:
                print(f"  {mode:<6} {side:<8} " + " / ".join(_fmt(split[f"time/{k}"], ".3f") for k in
                                                          ("generate", "verify", "refit", "other")))
    return failures


MPO_COLUMNS = ("mode", "side", "mean step s", "warm-up s", "setup s", "peak RSS MiB", "peak PSS MiB", "main RSS MiB",
               "loss step 0", "loss step 1", "grad norm step 0", "accuracy last", "margin last")


def _at(xs: list[Any] | None, i: int) -> Any:
    return xs[i] if xs and -len(xs) <= i < len(xs) else None


def mpo_side_row(mode: str, r: dict[str, Any]) -> list[str]:
    return [mode, r["side"], _fmt(r["mean_step_s"], ".3f"), _fmt(r["warmup_step_s"], ".2f"), _fmt(r["setup_s"], ".1f"),
            _fmt(r["peak_tree_rss_mib"], ".0f"), _fmt(r["peak_tree_pss_mib"], ".0f"),
            _fmt(r["peak_main_rss_mib"], ".0f"), _fmt(_at(r["losses"], 0), ".7f"), _fmt(_at(r["losses"], 1), ".7f"),
            _fmt(_at(r["grad_norms"], 0), ".6f"), _fmt(_at(r["accuracy"], -1), ".2f"),
            _fmt(_at(r["reward_margin"], -1), ".4f")]


def loss_agreement(results: dict[str, dict[str, Any]]) -> list[str]:
    """Lines comparing the two sides' losses at steps 0 and 1 (delta = 0 on both there) and the step-0 grad norm."""
    a, b = results.get("omni-rl", {}), results.get("trl", {})
    if "losses" not in a or "losses" not in b:
        return []
    out = []
    for step in (0, 1):
        x, y = _at(a["losses"], step), _at(b["losses"], step)
        if x is None or y is None:
            continue
        delta = 0.0 if step == 0 else _at(a["delta"], step - 1)
        out.append(f"loss step {step}: omni-rl {x:.7f} (delta {_fmt(delta, '.1e')}), TRL {y:.7f}, "
                   f"|diff| {abs(x - y):.1e}")
    x, y = _at(a["grad_norms"], 0), _at(b["grad_norms"], 0)
    if isinstance(x, float) and isinstance(y, float):
        out.append(f"grad norm step 0: omni-rl {x:.6f}, TRL {y:.6f}, |diff| {abs(x - y):.1e}")
    later = [abs(x - y) for x, y in zip(a["losses"][2:], b["losses"][2:])]
    if later:
        steps = "step 2" if len(later) == 1 else f"steps 2-{len(later) + 1}"
        out.append(f"{steps}: |diff| up to {max(later):.1e} (omni-rl delta after the last step "
                   f"{_fmt(_at(a['delta'], -1), '.1e')})")
    return out


def print_mpo_table(all_results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    """The MPO modes' table and loss / token checks; returns the failures."""
    from omni_rl.bench.trl_mpo import loss_check, trl_mpo_losses

    s = mpo_settings(args)
    types, weights = trl_mpo_losses(s["w_pref"], s["w_quality"], s["w_sft"])
    rows: list[list[str]] = []
    failures: list[str] = []
    for mode, results in all_results.items():
        for side in args.sides:
            r = results[side]
            if "error" in r:
                rows.append([mode, side, "FAILED"] + [""] * (len(MPO_COLUMNS) - 3))
                failures.append(f"{mode}/{side}: {r['error']}")
            else:
                rows.append(mpo_side_row(mode, r))
        if len(args.sides) == 2:
            rows.append([mode, "omni-rl/TRL", _ratio(results, "mean_step_s"), "", "",
                         _ratio(results, "peak_tree_rss_mib"), _ratio(results, "peak_tree_pss_mib"),
                         _ratio(results, "peak_main_rss_mib"), "", "", "", "", ""])
    print(f"\n== omni-rl MPO vs TRL {_trl_version()} DPOTrainer (loss_type={types}, loss_weights={weights}, "
          f"beta {s['beta']}): {args.pairs_per_step} pairs/step in micro-batches of {args.pairs_per_micro_batch}, "
          f"{args.steps} steps (mean excludes the first), AdamW lr {args.lr} betas {tuple(args.mpo_betas)} "
          f"wd {args.mpo_weight_decay}, constant lr, clip 1, TRL data {args.trl_format}, "
          f"{args.threads} thread(s) per process ==")
    widths = [max(len(row[i]) for row in [list(MPO_COLUMNS), *rows]) for i in range(len(MPO_COLUMNS))]
    for row in [list(MPO_COLUMNS), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print("step time: omni-rl time/step (build batch + train); TRL, wall time between optimizer-step ends (fetch + "
          "collate + forward/backward + optimizer + logging). accuracy / margin: implicit-reward preference accuracy "
          "and margin of the last step.")
    for mode, results in all_results.items():
        trl = results.get("trl", {})
        print(f"\n[{mode}]")
        for line in loss_agreement(results):
            print(f"  {line}")
        parity = trl.get("token_parity")
        if parity:
            px = parity.get("pixel_values_max_abs_diff")
            print(f"  token ids of the first step's pairs: {parity['identical_sequences']}/{parity['sequences']} "
                  f"sequences identical on both sides, TRL completions {parity['extra_completion_tokens']:+d} tokens"
                  + (f", pixel values max |diff| {px:.1e}" if px is not None else "")
                  + (f"; first difference {parity['first_difference']}" if parity["first_difference"] else ""))
        split = [f"{side} " + " / ".join(f"{k.removeprefix('time/')} {_fmt(v, '.3f')}" for k, v in
                                         results[side]["time_split_mean_s"].items() if k != "time/step")
                 for side in args.sides if "time_split_mean_s" in results.get(side, {})]
        if split:
            print(f"  mean step-time split (s): {'; '.join(split)}")
        if "precompute_ref_log_probs" in trl:
            how = ("precomputed once before training" if trl["precompute_ref_log_probs"] else
                   "a forward of a model copy in every micro-batch (precompute_ref_log_probs is refused for vision "
                   "datasets)")
            print(f"  TRL reference log-probs: {how}")
    print("\nTRL's DPOTrainer._compute_loss vs omni-rl's MPOObjective on identical random log-probs "
          "(8 pairs, float64):")
    for label, kw in (("delta 0", {}), ("delta 0, equal chosen lengths", {"equal_lengths": True}),
                      ("omni-rl delta 0.05", {"delta": 0.05})):
        c = loss_check(**s, **kw)
        print(f"  {label:<30} omni-rl {c['omni_rl']:.10f}  TRL {c['trl']:.10f}  |diff| {c['abs_diff']:.1e}")
    print("Both losses are the same function while omni-rl's delta is 0, which holds at steps 0 and 1 (at step 0 the "
          "policy is its own reference: every implicit reward, hence delta's first update, is 0); from step 2 on "
          "omni-rl's BCO term subtracts delta, the EMA (0.99) of the mean implicit reward, where TRL's bco_pair has "
          "no shift, and the losses part (slowly while the rewards stay near 0, where the BCO term's slope in delta, "
          "1 - sig(R_c - delta) - sig(R_r - delta), is near 0)"
          + ("; the sft term differs whenever a micro-batch's chosen responses differ in length (TRL: mean over all "
             "its chosen tokens; omni-rl: each pair's token mean, then the mean over pairs)" if s["w_sft"] else "")
          + ".")
    return failures


def _trl_version() -> str:
    from importlib.metadata import version

    return version("trl")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    for mode in args.modes:
        shutil.rmtree(out / mode, ignore_errors=True)
        if "@" in mode:
            shutil.rmtree(out / mode.partition("@")[0], ignore_errors=True)
    all_results = {mode: run_mpo_mode(mode, args, out) if mode in MPO_MODES else run_mode(mode, args, out)
                   for mode in args.modes}
    (out / "results.json").write_text(json.dumps(all_results, indent=2, default=str))
    failures = []
    gspo = {m: r for m, r in all_results.items() if m.partition("@")[0] in GSPO_MODES}
    mpo = {m: r for m, r in all_results.items() if m in MPO_MODES}
    if gspo:
        failures += print_table(gspo, args)
    if mpo:
        failures += print_mpo_table(mpo, args)
    for f in failures:
        print(f"FAILED {f}")
    print(f"\nfull results (per-step times, rewards, TRL logs, omni-rl time split): {out / 'results.json'}")
    return 1 if any("error" in r for res in all_results.values() for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
