"""TrainerGroup: `world_size` data-parallel `TrainerWorker`s as Ray actors, behind a narrow driver-side interface.

    group = TrainerGroup(model_path, num_workers=2, lr=1e-5, micro_batch_size=16, freeze={...}, ...)
    metrics = group.train(batch, num_minibatches=k)   # one rollout batch -> k optimizer steps
    group.weights()                          # [(checkpoint_name, tensor)] for the vLLM refit
    group.save(dir); group.load(dir); group.export_hf(dir); group.shutdown()

Bootstrapping: the actors start empty; rank 0 reports its node IP and a free port; then every actor builds its
`TrainerWorker`, which joins the torch.distributed group (gloo on CPU, nccl on GPU) at that address.

One optimizer step (`train_step`): the global weighted sequence count of the step is computed HERE, once, from the
whole mini-batch, and sent to every rank; the mini-batch is split into `world_size` contiguous shards (each shard
pickles its prompts' media once); each rank returns metric sums, added up by `reduce_metrics`.

Several optimizer steps per rollout batch (`num_minibatches` = k): the batch is split into k contiguous
mini-batches; before the first update the group fills every sequence's `old_logp` with the current policy's
log-probs (one no-grad pass), so later mini-batches use the pre-update behaviour policy in their GSPO ratio.
With k = 1 that pass is skipped: the ratio's denominator is the step's own detached logp (identical values).
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from statistics import fmean
from typing import Any

from omni_rl.training.batch import TrainBatch
from omni_rl.training.worker import TrainerWorker, reduce_metrics


class _TrainerActor(TrainerWorker):
    """A TrainerWorker whose construction is deferred to `setup` (after rank 0 has picked the rendezvous address)."""

    def __init__(self) -> None:  # noqa: D107  (deliberately does not build the worker yet)
        pass

    def address(self) -> tuple[str, int]:
        import ray

        from omni_rl.training.dist import free_port

        return ray.util.get_node_ip_address(), free_port()

    def setup(self, model_path: str, **kwargs: Any) -> dict[str, Any]:
        TrainerWorker.__init__(self, model_path, **kwargs)
        return self.info()


class TrainerGroup:
    def __init__(self, model_path: str | Path, *, num_workers: int = 1, num_cpus_per_worker: float = 1.0,
                 num_gpus_per_worker: float = 0.0, refit_chunk_bytes: int = 256 << 20, **worker_kwargs: Any):
        """`worker_kwargs`: keyword arguments of `TrainerWorker` (lr, freeze, micro_batch_size, encoder_once, ...),
        checked against its signature here; rank / world_size / master_addr / master_port are set by the group, and
        `device` defaults to "cuda" when `num_gpus_per_worker` > 0."""
        import ray

        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        reserved = {"rank", "world_size", "master_addr", "master_port"} & set(worker_kwargs)
        if reserved:
            raise ValueError(f"TrainerGroup sets {sorted(reserved)} itself")
        if num_gpus_per_worker > 0:
            worker_kwargs.setdefault("device", "cuda")
        inspect.signature(TrainerWorker).bind(str(model_path), **worker_kwargs)  # unknown kwargs raise here
        self.world_size = num_workers
        self.refit_chunk_bytes = refit_chunk_bytes
        actor_cls = ray.remote(_TrainerActor)
        self.actors = [actor_cls.options(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker).remote()
                       for _ in range(num_workers)]
        addr, port = ray.get(self.actors[0].address.remote())
        self.infos = ray.get([a.setup.remote(str(model_path), rank=r, world_size=num_workers, master_addr=addr,
                                             master_port=port, **worker_kwargs)
                              for r, a in enumerate(self.actors)])

    # ---------------------------------------------------------------------------------------------- training
    def train(self, batch: TrainBatch, *, num_minibatches: int = 1) -> dict[str, float]:
        """`num_minibatches` optimizer steps on one rollout batch (contiguous mini-batches); metrics are the means
        over the steps (counts and times: sums)."""
        if num_minibatches < 1:
            raise ValueError(f"num_minibatches must be >= 1, got {num_minibatches}")
        if num_minibatches > 1 and any(s.old_logp is None for s in batch.sequences):
            t = time.perf_counter()
            batch = batch.with_old_logp(self.compute_logp(batch))
            old_logp_s = time.perf_counter() - t
        else:
            old_logp_s = 0.0
        steps = [self.train_step(mb) for mb in batch.split(num_minibatches) if mb.num_sequences]
        out = {k: fmean(m[k] for m in steps) for k in steps[0]} if steps else {}
        for k in ("train/num_seqs", "train/num_weighted_seqs", "train/tokens", "train/encoder_media_items",
                  "train/logprob_masked_seqs", "train/time_s"):
            if steps:
                out[k] = sum(m[k] for m in steps)
        out["train/optimizer_steps"] = float(len(steps))
        out["train/old_logp_s"] = old_logp_s
        return out

    def train_step(self, batch: TrainBatch, *, global_num_seqs: float | None = None) -> dict[str, float]:
        """One optimizer step over `batch` (scattered across the ranks)."""
        import ray

        t = time.perf_counter()
        count = batch.num_weighted if global_num_seqs is None else global_num_seqs
        shards = batch.split(self.world_size)
        per_rank = ray.get([a.train_step.remote(s, global_num_seqs=count) for a, s in zip(self.actors, shards)])
        return {**reduce_metrics(per_rank), "train/time_s": time.perf_counter() - t}

    def compute_logp(self, batch: TrainBatch) -> list[list[float]]:
        import ray

        parts = ray.get([a.compute_logp.remote(s) for a, s in zip(self.actors, batch.split(self.world_size))])
        return [row for part in parts for row in part]

    # ------------------------------------------------------------------------------------ weights + checkpoints
    def state_dict_chunks(self, max_bytes: int | None = None) -> list[list[tuple[str, Any]]]:
        import ray

        return ray.get(self.actors[0].state_dict_chunks.remote(max_bytes or self.refit_chunk_bytes))

    def weights(self) -> list[tuple[str, Any]]:
        """All weights as [(checkpoint_name, tensor)] from rank 0 (the ranks are replicas), for the vLLM refit."""
        return [kv for chunk in self.state_dict_chunks() for kv in chunk]

    def save(self, out_dir: str | Path) -> None:
        import ray

        ray.get([a.save.remote(str(out_dir)) for a in self.actors])

    def load(self, ckpt_dir: str | Path) -> None:
        import ray

        ray.get([a.load.remote(str(ckpt_dir)) for a in self.actors])

    def export_hf(self, out_dir: str | Path) -> None:
        import ray

        ray.get(self.actors[0].export_hf.remote(str(out_dir)))

    def info(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([a.info.remote() for a in self.actors])

    def shutdown(self) -> None:
        import ray

        if not self.actors:
            return
        try:
            ray.get([a.shutdown.remote() for a in self.actors], timeout=30)
        finally:
            for a in self.actors:
                ray.kill(a, no_restart=True)
            self.actors = []
