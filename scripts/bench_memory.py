"""Per-rank trainer memory: replicated vs FSDP2 on 2 ranks, with and without activation checkpointing.

The model is the text family's Qwen3-style architecture at a larger width (default hidden 768, 12 layers, 12 heads /
4 KV heads, MLP 2048: ~85M parameters, built offline with random weights into `<out>/model`). Each configuration
runs in 2 fresh processes (a real gloo group, `TrainerWorker` exactly as the Ray actors run it), which take
`--steps` optimizer steps on a batch of `--seqs` sequences of `--prompt` + `--response` tokens per rank.

Printed per rank (rank 0; rank 1 is within a few MiB):
  state MiB      parameters + gradients + AdamW state this rank holds, counted from its tensors (FSDP2: its shards)
  step peak MiB  the process's peak resident memory during the measured steps (VmHWM reset after a warm-up step)
                 minus its resident memory before them: what a step adds on top (activations, gradients, gathered
                 weights)
  load peak MiB  the peak resident memory while the worker builds and loads the model, above what the process held
                 before (FSDP2: built on the meta device, then only this rank's shards are read, a block at a time)
  resident MiB   resident memory after the steps (everything: Python, torch, the model, the optimizer)
  trimmed MiB    the same after malloc_trim(0): glibc keeps freed heap pages for reuse, which resident counts
  step s         seconds per optimizer step
and the ratios to replicated without checkpointing, side by side in one run (absolute figures vary between machines).

    .venv/bin/python scripts/bench_memory.py
    .venv/bin/python scripts/bench_memory.py --hidden 512 --layers 8 --seqs 8 --response 256
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

CONFIGS = (("replicated", False), ("fsdp2", False), ("replicated", True), ("fsdp2", True))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _trimmed_rss_kib() -> int:
    """Resident memory after glibc hands its freed heap pages back to the OS (malloc_trim): what is live, without
    the allocator's retained free space (which a later step would reuse)."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_kib("VmRSS")


def _rank(rank: int, port: int, model: str, strategy: str, ac: bool, args: dict, out: str) -> None:
    import torch

    torch.set_num_threads(1)
    from omni_rl.models.families import get_family
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
    from omni_rl.training.worker import TrainerWorker

    start = _rss_kib("VmRSS")
    worker = TrainerWorker(model, family=get_family("text"), warmup_steps=0, rank=rank, world_size=2, master_addr="127.0.0.1",
                           master_port=port, strategy=strategy, activation_checkpointing=ac,
                           micro_batch_size=args["seqs"], lr=1e-5, grad_clip=1.0, num_threads=1)
    load_peak = _rss_kib("VmHWM") - start  # building / loading the model (fsdp2: meta device + this rank's shards)
    g = torch.Generator().manual_seed(rank)
    prompts = [TrainPrompt(prompt_ids=torch.randint(10, 600, (args["prompt"],), generator=g).tolist(), uid=f"p{i}")
               for i in range(args["seqs"])]
    seqs = [TrainSequence(prompt_index=i, response_ids=torch.randint(10, 600, (args["response"],), generator=g).tolist(),
                          advantage=float(torch.rand((), generator=g)) - 0.5) for i in range(args["seqs"])]
    batch = TrainBatch(prompts=prompts, sequences=seqs)
    worker.train_step(batch, global_num_seqs=2.0 * args["seqs"])  # warm-up: AdamW state and allocator pools exist
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident memory (VmHWM) to the current one
    t0 = time.perf_counter()
    for _ in range(args["steps"]):
        worker.train_step(batch, global_num_seqs=2.0 * args["seqs"])
    step_s = (time.perf_counter() - t0) / args["steps"]
    peak = _rss_kib("VmHWM")

    def local_bytes(t: torch.Tensor) -> int:
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    state = sum(local_bytes(p) + (local_bytes(p.grad) if p.grad is not None else 0) for p in worker.params)
    state += sum(local_bytes(v) for s in worker.optimizer.state.values() for v in s.values()
                 if isinstance(v, torch.Tensor) and v.dim() > 0)
    total = sum(p.numel() for p in worker.model.parameters())
    Path(out, f"{strategy}-{int(ac)}-{rank}.json").write_text(json.dumps(
        {"state_mib": state / 2**20, "step_peak_mib": (peak - before) / 1024, "resident_mib": _rss_kib("VmRSS") / 1024,
         "load_peak_mib": load_peak / 1024, "trimmed_mib": _trimmed_rss_kib() / 1024, "step_s": step_s,
         "params": total}))
    worker.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--mlp", type=int, default=2048)
    p.add_argument("--seqs", type=int, default=4, help="sequences per rank (one micro-batch)")
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--response", type=int, default=256)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("outputs/bench_memory"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from omni_rl.bench.models import scaled_text_model

    model = scaled_text_model(args.out / "model", hidden=args.hidden, layers=args.layers, heads=args.heads,
                              kv_heads=args.kv_heads, mlp=args.mlp)

    from omni_rl.training.dist import free_port

    ctx = mp.get_context("spawn")
    rows = []
    for strategy, ac in CONFIGS:
        port = free_port()
        procs = [ctx.Process(target=_rank, args=(r, port, str(model), strategy, ac, vars(args) | {"out": None},
                                                 str(args.out))) for r in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
            if proc.exitcode != 0:
                raise SystemExit(f"{strategy} ac={ac}: a rank exited with {proc.exitcode}")
        ranks = [json.loads((args.out / f"{strategy}-{int(ac)}-{r}.json").read_text()) for r in range(2)]
        rows.append((strategy, ac, ranks[0]))
        print(f"done: {strategy}, activation checkpointing {ac}", flush=True)

    base = rows[0][2]
    n = base["params"]
    print(f"\nper-rank trainer memory, 2 gloo ranks, {n / 1e6:.1f}M parameters (fp32, AdamW), {args.seqs} seqs x "
          f"{args.prompt}+{args.response} tokens per rank, {args.steps} steps")
    print(f"{'strategy':<11}{'act. ckpt':>10}{'state MiB':>11}{'x':>6}{'step peak MiB':>15}{'x':>6}"
          f"{'load peak MiB':>15}{'x':>6}{'resident MiB':>14}{'x':>6}{'trimmed MiB':>13}{'x':>6}{'step s':>8}{'x':>6}")
    for strategy, ac, r in rows:
        print(f"{strategy:<11}{str(ac):>10}{r['state_mib']:>11.1f}{r['state_mib'] / base['state_mib']:>6.2f}"
              f"{r['step_peak_mib']:>15.1f}{r['step_peak_mib'] / max(base['step_peak_mib'], 1e-9):>6.2f}"
              f"{r['load_peak_mib']:>15.1f}{r['load_peak_mib'] / max(base['load_peak_mib'], 1e-9):>6.2f}"
              f"{r['resident_mib']:>14.1f}{r['resident_mib'] / base['resident_mib']:>6.2f}"
              f"{r['trimmed_mib']:>13.1f}{r['trimmed_mib'] / base['trimmed_mib']:>6.2f}"
              f"{r['step_s']:>8.2f}{r['step_s'] / base['step_s']:>6.2f}")
    print("\nstate = parameters + gradients + AdamW moments held by the rank (goal with FSDP2 at 2 ranks: ~1/2);")
    print("step peak = peak resident memory during a step above the resident memory before it (activations,")
    print("gradients, gathered weights); measured after a warm-up step.")
    print("load peak = peak resident memory while the worker builds and loads the model, above the process's")
    print("resident memory before (fsdp2 builds on the meta device and reads only its shards);")
    print("resident = the process's resident memory after the steps (Python, torch, model, optimizer);")
    print("trimmed = the same after malloc_trim(0): without the free heap pages glibc keeps for reuse.")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
