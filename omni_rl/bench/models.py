"""Benchmark models: the tiny families' architectures at a larger size, built offline with random weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def scaled_text_model(out: Path, *, hidden: int, layers: int, heads: int, kv_heads: int, mlp: int,
                      seed: int = 0) -> Path:
    """The text family's Qwen3-style causal LM at the given sizes (head_dim = hidden / heads; the tiny model's
    tokenizer), built once into `out/<sizes>` and reused; returns the checkpoint dir."""
    from omni_rl.models.families import get_family
    from omni_rl.models.tiny import cached_build

    fam = get_family("text")
    spec = {**fam.tiny_spec_of(None), "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": hidden // heads,
            "intermediate_size": mlp}
    name = f"text-h{hidden}-l{layers}-a{heads}-kv{kv_heads}-m{mlp}-s{seed}"
    return cached_build(out, name, lambda d: fam.build_tiny(d, seed=seed, spec=spec))


def add_step_bench_args(ap: Any, *, out: str, micro_batch_size: int = 16) -> None:
    """The arguments the trainer step-time benchmarks share: model size, timing, threads, seed, model cache."""
    ap.add_argument("--micro-batch-size", type=int, default=micro_batch_size, help="sequences per forward")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--mlp", type=int, default=768)
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps per setting (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(out), help="model cache")


def step_bench_workers(args: Any, settings: dict) -> dict:
    """{label: TrainerWorker(**settings[label])} on the text architecture at `args`' sizes (`add_step_bench_args`),
    after setting the torch threads."""
    import torch

    from omni_rl.models.families import get_family
    from omni_rl.training.worker import TrainerWorker

    if args.threads:
        torch.set_num_threads(args.threads)
    model = scaled_text_model(args.out / "model", hidden=args.hidden, layers=args.layers, heads=args.heads,
                              kv_heads=args.kv_heads, mlp=args.mlp, seed=args.seed)
    return {label: TrainerWorker(str(model), family=get_family("text"), micro_batch_size=args.micro_batch_size,
                                 lr=1e-6, warmup_steps=0, seed=args.seed, **kw)
            for label, kw in settings.items()}


def print_step_times(res: dict, name: str, slow: Any, fast: Any) -> None:
    """One line per setting of an `interleaved_train_steps` result, then the speed-up slow / fast."""
    for label in (slow, fast):
        print(f"{name}={str(label):5s}: step median {res[label]['median_s']:.3f} s (min {res[label]['min_s']:.3f} s), "
              f"loss {res[label]['metrics']['train/loss']:+.6f}")
    print(f"speedup {name}={slow} / {name}={fast}: {res[slow]['median_s'] / res[fast]['median_s']:.2f}x (median step "
          f"time), {res[slow]['min_s'] / res[fast]['min_s']:.2f}x (min step time)")


def interleaved_train_steps(workers: dict, batch, *, steps: int) -> dict:
    """`steps` timed `TrainerWorker.train(batch)` calls per worker, alternating between the workers (a shared, busy
    machine drifts; interleaving cancels most of it), after one untimed warm-up call each (allocator, first-call
    overheads). Returns {label: {"times": [s], "median_s", "min_s", "metrics": the last call's metrics}}."""
    import statistics
    import time

    times: dict = {label: [] for label in workers}
    last: dict = {}
    for i in range(steps + 1):
        for label, w in workers.items():
            t = time.perf_counter()
            last[label] = w.train(batch)
            if i > 0:
                times[label].append(time.perf_counter() - t)
    return {label: {"times": ts, "median_s": statistics.median(ts), "min_s": min(ts), "metrics": last[label]}
            for label, ts in times.items()}


def scaled_vl_model(base: Path, out: Path, *, depth: int, hidden: int, max_pixels: int, seed: int = 0) -> Path:
    """The Qwen2.5-VL-style checkpoint `base` with a random vision tower of `depth` blocks x `hidden` wide (heads of
    32, MLP 4x, a full-attention block every 4th as in Qwen2.5-VL, 112 px windows) and an image processor that keeps
    images of up to `max_pixels` pixels at full size (28 px = one LM token). Every weight outside the vision tower
    (LM, embeddings, head) is copied from `base`. Built once into `out/<name>` and reused; returns the dir."""
    import json
    import shutil

    from omni_rl.models.tiny import cached_build

    def build(d: Path) -> None:
        import torch
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        cfg = Qwen2_5_VLConfig.from_pretrained(base)
        v = cfg.vision_config
        v.depth, v.hidden_size, v.intermediate_size = depth, hidden, 4 * hidden
        v.num_heads = max(1, hidden // 32)
        v.fullatt_block_indexes = list(range(3, depth, 4)) or [depth - 1]
        v.window_size = 112
        src = Qwen2_5_VLForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(cfg).to(torch.float32)
        kept = {k: t for k, t in src.state_dict().items() if ".visual." not in f".{k}"}
        missing, unexpected = model.load_state_dict(kept, strict=False)
        if unexpected or any(".visual." not in f".{k}" for k in missing):
            raise RuntimeError(f"copying the LM of {base}: unexpected {unexpected}, missing outside the vision tower "
                               f"{[k for k in missing if '.visual.' not in f'.{k}']}")
        model.save_pretrained(d)
        for f in Path(base).iterdir():
            if f.is_file() and not (d / f.name).exists():
                shutil.copy2(f, d / f.name)
        proc_file = d / "processor_config.json"
        proc = json.loads(proc_file.read_text())
        for key in ("image_processor", "video_processor"):
            if key in proc:
                proc[key]["size"]["longest_edge"] = max(max_pixels, proc[key]["size"]["shortest_edge"])
        proc_file.write_text(json.dumps(proc, indent=2))

    return cached_build(out, f"{Path(base).name}-vision{depth}x{hidden}-px{max_pixels}-s{seed}", build)
