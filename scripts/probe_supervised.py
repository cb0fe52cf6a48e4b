#!/usr/bin/env python
"""Can the tiny model learn a synthetic task at all? A supervised probe, the check that picked the default image_rl
tasks and the warm-start design (docs/training.md, "Learning").

Teacher-forces the warm-start target (`<think>...</think> \\boxed{answer}`) on a synthetic suite, with optional label
noise, and every `--steps/5` steps prints, per task, the mean probability the model puts on the gold answer among the
task's candidate answers (the 4 letters for multiple choice, else every answer of the task; summed logp of each full
target, softmax over candidates), and on the teacher's confusion of it (`sample_confused`). Chance is 1/#candidates.
Measured on the training rows: this asks whether the model can represent the mapping, not whether it generalises.

    .venv/bin/python scripts/probe_supervised.py --tasks image_colour image_count --steps 300
    .venv/bin/python scripts/probe_supervised.py --tasks image_mcq --steps 500                  # stays near 0.25-0.45
    .venv/bin/python scripts/probe_supervised.py --tasks image_colour --noise 0.6 --noise-kind uniform
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path


def main() -> None:
    from omni_rl.data.synthetic import TASKS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["image_colour", "image_count"], choices=list(TASKS),
                    metavar="TASK", help=f"synthetic tasks: {', '.join(TASKS)}")
    ap.add_argument("--family", default="omni", help="tiny model family (default omni)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--noise", type=float, default=0.0, help="fraction of targets with a wrong answer")
    ap.add_argument("--noise-kind", choices=["confused", "uniform"], default="confused",
                    help="confused: the warm start's fixed wrong answer; uniform: a random other answer of the task")
    ap.add_argument("--per-task", type=int, default=64, help="rows per task")
    ap.add_argument("--image-size", type=int, default=56, help="image side in pixels (56 -> 4 image tokens, 112 -> 16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import render_prompt, tokenizer_of
    from omni_rl.data.synthetic import generate_suite
    from omni_rl.models.families import get_family
    from omni_rl.models.policy import load_model, load_processor
    from omni_rl.models.tiny import build_tiny_model, default_cache
    from omni_rl.training.forward import score
    from omni_rl.training.warm_start import answer_candidates as candidates
    from omni_rl.training.warm_start import pair_batch, sample_confused, sample_gold, target_text

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = random.Random(args.seed)
    model_dir, family = build_tiny_model(args.family, default_cache(), seed=args.seed), get_family(args.family)
    suite = generate_suite(Path(tempfile.mkdtemp(prefix="probe_suite_")) / "s", tasks=args.tasks,
                           n_per_task=args.per_task, seed=args.seed, image_size=args.image_size)
    processor = load_processor(model_dir, family)
    tok = tokenizer_of(processor)
    samples = load_samples(suite).samples
    prompts = [render_prompt(s, processor, enable_thinking=True, video_fps=4.0, video_max_frames=8,
                             audio_in_video_key=family.audio_in_video_key) for s in samples]
    golds = [sample_gold(s) for s in samples]
    pools: dict[str, list[str]] = {}
    for s, g in zip(samples, golds):
        pools.setdefault(s.source, []).append(g)
    confusions = [sample_confused(s, pools[s.source]) for s in samples]
    ids = {}

    def target(ans: str) -> list[int]:
        if ans not in ids:
            ids[ans] = tok(target_text(ans), add_special_tokens=False)["input_ids"]
        return ids[ans]

    model = load_model(model_dir, "float32", family=family)
    fwd = family.forward(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.98), weight_decay=0.0)  # as the warm start
    pad = tok.pad_token_id or 0

    def report(step: int, t0: float) -> None:
        gold_p: dict[str, list[float]] = {}
        conf_p: dict[str, list[float]] = {}
        with torch.no_grad():
            for s, p, g, c in zip(samples, prompts, golds, confusions):
                cands = candidates(s, pools[s.source])
                out = score(fwd, pair_batch([(p, target(a)) for a in cands]), encoder_once=True, pad_id=pad)
                probs = torch.softmax(out.logp.sum(1), 0)
                gold_p.setdefault(s.source, []).append(float(probs[cands.index(g)]))
                conf_p.setdefault(s.source, []).append(float(probs[cands.index(c)]) if c in cands else 0.0)
        cells = [f"{k} p(gold) {sum(v) / len(v):.3f} p(confused) {sum(conf_p[k]) / len(v):.3f} "
                 f"(chance {1 / len(candidates(next(s for s in samples if s.source == k), pools[k])):.3f})"
                 for k, v in sorted(gold_p.items())]
        print(f"step {step:4d} ({time.perf_counter() - t0:5.1f} s): " + " | ".join(cells), flush=True)

    t0 = time.perf_counter()
    report(0, t0)
    every = max(1, args.steps // 5)
    for step in range(1, args.steps + 1):
        pairs = []
        for _ in range(args.batch_size):
            i = rng.randrange(len(samples))
            ans = golds[i]
            if rng.random() < args.noise:
                ans = confusions[i] if args.noise_kind == "confused" else rng.choice(
                    [a for a in sorted(set(pools[samples[i].source])) if a != golds[i]] or [golds[i]])
            pairs.append((prompts[i], target(ans)))
        out = score(fwd, pair_batch(pairs), encoder_once=True, pad_id=pad)
        loss = -(out.logp * out.mask).sum(1).mean()  # summed token NLL, as the warm start
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % every == 0 or step == args.steps:
            report(step, t0)


if __name__ == "__main__":
    main()
