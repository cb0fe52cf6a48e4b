"""Weight refit memory: the whole state dict through the driver vs streamed chunk by chunk, side by side in one run.

A trainer group (`--strategy`, `--ranks`) and one vLLM rollout worker serve the text family's architecture at a larger
width (default hidden 768, 12 layers: ~85M parameters, ~330 MiB in float32, built offline). The two refit paths
alternate `--reps` times:

  whole     `rollout.update_weights(trainer.weights())`: rank 0 returns every chunk to the driver, which puts them
            in the object store for the workers, which load them in one call
  streamed  `rollout.update_weights(trainer.weight_stream())`: what `omni-rl run` does; chunk i goes from rank 0's
            object store to the worker, which loads it while rank 0 gathers chunk i+1

Printed per process: the peak private resident memory (RssAnon) during the refit minus the value just before it,
and the same for the object store's bytes in use (tensors read from the store stay in it, zero-copy, so they count
there once), sampled every ~2 ms by a separate process, in MiB; then streamed / whole. "Extra" is what a refit adds on top of what the process already holds; the goal for streaming is about one
chunk (`--chunk-mib`) per process instead of the model. After each refit a greedy rollout is compared across the
paths (same weights, same tokens).

    .venv/bin/python scripts/bench_refit.py
    .venv/bin/python scripts/bench_refit.py --strategy fsdp2 --ranks 2 --chunk-mib 16
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _poll(conn, gcs_address: str, pids: dict[str, int]) -> None:
    """Sampler process (its own GIL: the driver's busy threads cannot starve it): every ~2 ms the object store's
    bytes in use and each process's private resident memory (RssAnon: plasma pages a process maps are the store's,
    counted once, there). Commands: "reset" -> the current values (and peaks := them); "peak" -> the peaks."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    state = get_state_from_address(gcs_address)

    def sample() -> dict[str, int]:
        now = {name: _status_kib(pid, "RssAnon") << 10 for name, pid in pids.items()}
        now["object store"] = int(get_memory_info_reply(state).store_stats.object_store_bytes_used)
        return now

    peak = sample()
    while True:
        if conn.poll(0.002):
            cmd = conn.recv()
            if cmd == "stop":
                return
            if cmd == "reset":
                peak = sample()
                conn.send(peak)
            else:
                conn.send(peak)
        now = sample()
        peak = {k: max(v, now[k]) for k, v in peak.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=2048)
    ap.add_argument("--chunk-mib", type=float, default=32.0, help="refit chunk budget (trainer.refit_chunk_mib)")
    ap.add_argument("--strategy", choices=("replicated", "fsdp2"), default="replicated")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2, help="refits per path (alternating)")
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_refit"))
    args = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ray
    import torch

    from omni_rl.bench.models import scaled_text_model
    from omni_rl.distributed.ray_utils import init_ray
    from omni_rl.rollout.group import RolloutGroup
    from omni_rl.models.families import get_family
    from omni_rl.training.group import TrainerGroup

    model = scaled_text_model(args.out / "models", hidden=args.hidden, layers=args.layers, heads=args.heads,
                              kv_heads=args.kv_heads, mlp=args.mlp)
    init_ray(num_cpus=max(4, args.ranks + 2))
    chunk_bytes = int(args.chunk_mib * 2**20)
    text = get_family("text")
    trainer = TrainerGroup(str(model), family=text, warmup_steps=0, num_workers=args.ranks, strategy=args.strategy, num_threads=1,
                           refit_chunk_bytes=chunk_bytes)
    rollout = RolloutGroup(str(model), num_workers=1,
                           worker_kwargs=dict(family=text, max_model_len=256, kv_cache_gib=1),
                           sampling=dict(temperature=0.0, max_tokens=8), timeout_s=600, refit_timeout_s=600)
    procs = {"driver": os.getpid(), "vLLM worker": ray.get(rollout.workers[0].info.remote())["pid"]}
    procs.update({f"trainer rank {i['rank']}": i["pid"] for i in trainer.info()})
    stream = trainer.weight_stream()
    chunk_sizes = [sum(int(torch.tensor(s).prod()) * torch.empty((), dtype=getattr(torch, d)).element_size()
                       for _, s, d in c) for c in stream.plan]
    model_bytes = sum(chunk_sizes)
    prompt = {"prompt_token_ids": list(range(10, 40))}
    conn, child = mp.get_context("spawn").Pipe()
    poller = mp.get_context("spawn").Process(target=_poll, args=(child, ray.get_runtime_context().gcs_address, procs),
                                             daemon=True)
    poller.start()
    rows: dict[str, list[dict[str, float]]] = {"whole": [], "streamed": []}
    tokens: dict[str, list[list[int]]] = {"whole": [], "streamed": []}
    version = 0
    for _ in range(args.reps):
        for path in ("whole", "streamed"):
            gc.collect()
            time.sleep(0.5)  # the last refit's objects are freed
            conn.send("reset")
            before = conn.recv()
            version += 1
            t0 = time.perf_counter()
            if path == "whole":
                weights = trainer.weights()
                rollout.update_weights(weights, version=version)
                del weights
            else:
                rollout.update_weights(trainer.weight_stream(), version=version)
            seconds = time.perf_counter() - t0
            time.sleep(0.05)
            conn.send("peak")
            peak = conn.recv()
            row = {name: (peak[name] - before[name]) / 2**20 for name in peak}
            row["seconds"] = seconds
            rows[path].append(row)
            out = rollout.workers[0].generate.remote([prompt], n=1, temperature=0.0, max_tokens=8)
            tokens[path].append(ray.get(out)[0][0].token_ids)
    conn.send("stop")
    poller.join()
    same = all(t == tokens["whole"][0] for ts in tokens.values() for t in ts)
    print(f"\nmodel {model_bytes / 2**20:.0f} MiB ({args.hidden} x {args.layers} layers), {len(stream)} chunks of <= "
          f"{args.chunk_mib:g} MiB (whole blocks; the largest {max(chunk_sizes) / 2**20:.1f} MiB), trainer {args.strategy} x {args.ranks}, {args.reps} refits per "
          f"path; greedy tokens identical after every refit: {same}")
    print("peak extra MiB during a refit (median over the refits)")
    print(f"{'process':<16}{'whole':>10}{'streamed':>10}{'streamed/whole':>16}")
    for key in [*procs, "object store", "seconds"]:
        w = statistics.median(r[key] for r in rows["whole"])
        s = statistics.median(r[key] for r in rows["streamed"])
        ratio = f"{s / w:.2f}" if w > 1e-9 else "-"
        print(f"{key:<16}{w:>10.1f}{s:>10.1f}{ratio:>16}")
    total = {p: statistics.median(sum(v for k, v in r.items() if k != "seconds") for r in rows[p]) for p in rows}
    print(f"{'all processes':<16}{total['whole']:>10.1f}{total['streamed']:>10.1f}"
          f"{total['streamed'] / max(total['whole'], 1e-9):>16.2f}")
    rollout.shutdown()
    trainer.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
