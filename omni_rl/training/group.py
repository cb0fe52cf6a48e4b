"""TrainerGroup: `num_workers` data-parallel `TrainerWorker`s as Ray actors, behind a narrow driver-side interface.

    group = TrainerGroup(model_path, num_workers=2, family=family, objective=GSPOObjective(), lr=1e-5, ...)
    metrics = group.train(batch, num_minibatches=k)   # one rollout batch -> k optimizer steps
    group.weight_stream()                    # the vLLM refit, one chunk at a time (RolloutGroup.update_weights)
    group.weights()                          # [(checkpoint_name, tensor)], all at once in the driver
    group.save(dir); group.load(dir); group.export_hf(dir); group.shutdown()

Bootstrapping: the actors start empty; rank 0 reports its node IP and a free port; then every actor builds its
`TrainerWorker`, which joins the torch.distributed group (gloo on CPU, nccl on GPU) at that address.

`train(batch, num_minibatches=k)`: ONE round trip per rollout batch. The batch is split into `num_workers`
contiguous shards, each `ray.put` once (a shard pickles each referenced prompt's media once); every rank runs
`TrainerWorker.train` on its shard: k mini-batches (mini-batch j = every rank's j-th piece), `old_logp` filled by one
no-grad pass before the first update when k > 1, per-mini-batch global counts all-reduced, metrics all-reduced.
The group's whole-batch weighted count is passed along and checked by the ranks.

Weight refit: `weight_stream()` hands the rollout group one Ray object per chunk of whole blocks
(`TrainerWorker.weight_plan`). Rank 0 puts chunk i in its object store when asked for it (under fsdp2 every rank
all-gathers that chunk's tensors with it) and the driver only passes object refs along, so the weights never pass
through the driver and at most two chunks exist at a time: the one the rollout workers are loading and the next.

Failures: a dead actor (RayActorError) or a raising one surfaces as RuntimeError naming the rank, as soon as it
happens (not after the other ranks time out in a collective).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omni_rl.training.batch import TrainBatch
from omni_rl.training.objectives import default_objective
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
        """Build the worker; its `info()` plus `start_seconds`, the seconds the build took (model load, process
        group)."""
        t0 = time.perf_counter()
        TrainerWorker.__init__(self, model_path, **kwargs)
        return {**self.info(), "start_seconds": time.perf_counter() - t0}

    def streamed_chunk(self, index: int, max_bytes: int) -> tuple[dict[str, int], Any]:
        """(a small receipt, `weight_chunk(index)`) as two Ray objects: the driver checks the receipt and passes the
        chunk's ref on without fetching the chunk."""
        chunk = self.weight_chunk(index, max_bytes)
        nbytes = sum(t.numel() * t.element_size() for _, t in chunk or ())
        return {"step": self.step, "bytes": nbytes}, chunk


class WeightStream:
    """The trainer's current weights for a vLLM refit, as Ray object refs one chunk at a time (`chunk_refs`).

    `plan`: [[(checkpoint_name, shape, dtype)]] per chunk, so a receiver can check the names before loading anything.
    Iterating `chunk_refs()` again streams the weights again (a replacement rollout worker catches up this way); it
    raises if the trainer has taken an optimizer step since the first pass (the weights are no longer that
    version)."""

    def __init__(self, group: TrainerGroup, max_bytes: int):
        self.group, self.max_bytes = group, max_bytes
        if max_bytes not in group._plans:  # the plan depends on the names and shapes only: asked for once
            plan = group._get([group.workers[0].weight_plan.remote(max_bytes)], "weight refit")[0]
            group._plans[max_bytes] = [[(ckpt, tuple(shape), dtype) for _, ckpt, shape, dtype in chunk]
                                       for chunk in plan]
        self.plan = group._plans[max_bytes]
        self.step: int | None = None  # the trainer step these weights are from (set by the first pass)
        self.bytes_streamed = 0

    def __len__(self) -> int:
        return len(self.plan)

    def chunk_refs(self) -> Iterator[Any]:
        """One object ref per chunk of `plan`, in order. Chunk i+1 is requested when chunk i is handed out, so the
        trainer gathers the next chunk while the receivers load this one."""
        g = self.group
        actors = g.workers if g.sharded else g.workers[:1]  # fsdp2: every rank takes part in the gathers

        def request(i: int) -> tuple[list[Any], Any]:
            calls = [a.streamed_chunk.options(num_returns=2).remote(i, self.max_bytes) for a in actors]
            return [receipt for receipt, _ in calls], calls[0][1]

        pending = request(0) if self.plan else None
        for i in range(len(self.plan)):
            receipts, chunk = pending
            pending = request(i + 1) if i + 1 < len(self.plan) else None
            got = g._get(receipts, "weight refit")[0]
            if self.step is None:
                self.step = got["step"]
            elif got["step"] != self.step:
                raise RuntimeError(f"the trainer has stepped ({self.step} -> {got['step']}) since these weights were "
                                   "streamed: stream its current weights with TrainerGroup.weight_stream()")
            self.bytes_streamed += got["bytes"]
            yield chunk


class TrainerGroup:
    """`num_workers` TrainerWorker actors (ranks) training one model data-parallel; the keyword arguments of
    `TrainerWorker` go to every rank (`omni_rl.wiring.groups.build_trainer_group` builds it from the config).

    Shape shared with `omni_rl.rollout.group.RolloutGroup`: built as `(model_path, *, num_workers,
    num_cpus_per_worker, num_gpus_per_worker, resources, ...)`; `num_workers`; `workers` (the Ray actor handles, in
    rank order); `node_ids` (the Ray node of each); `start_seconds` (the slowest worker's own start-up, measured
    inside it); `shutdown()` (idempotent)."""

    def __init__(self, model_path: str | Path, *, num_workers: int = 1, num_cpus_per_worker: float = 1.0,
                 num_gpus_per_worker: float = 0.0, refit_chunk_bytes: int = 256 << 20,
                 resources: Mapping[str, float] | None = None, **worker_kwargs: Any):
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
        self.num_workers = num_workers
        self.refit_chunk_bytes = refit_chunk_bytes
        self._plans: dict[int, list[list[tuple[str, tuple[int, ...], str]]]] = {}  # refit plans by chunk size
        # fsdp2: weights are gathered by every rank together, so every rank takes part in a refit / export
        self.sharded = worker_kwargs.get("strategy", "replicated") == "fsdp2"
        # the driver's copy: units, counts and metric reduction (each rank trains its own copy, which holds the
        # objective's state); the ranks get it pickled
        if worker_kwargs.get("objective") is None:
            worker_kwargs["objective"] = default_objective()
        self.objective = worker_kwargs["objective"]
        actor_cls = ray.remote(_TrainerActor)
        custom = {k: float(v) for k, v in (resources or {}).items()}  # e.g. {"trainer_host": 1}: nodes that have it
        self.workers = [actor_cls.options(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker,
                                          resources=custom).remote()
                        for _ in range(num_workers)]
        addr, port = ray.get(self.workers[0].address.remote())
        self.infos = ray.get([a.setup.remote(str(model_path), rank=r, world_size=num_workers, master_addr=addr,
                                             master_port=port, **worker_kwargs)
                              for r, a in enumerate(self.workers)])
        self.start_seconds = max(info["start_seconds"] for info in self.infos)

    @property
    def node_ids(self) -> list[str]:
        """The Ray node of every rank, in rank order."""
        return [info.get("node_id", "") for info in self.infos]

    # ---------------------------------------------------------------------------------------------- training
    def train(self, batch: TrainBatch, *, num_minibatches: int = 1) -> dict[str, float]:
        """`num_minibatches` optimizer steps on one rollout batch: the batch is split into `world_size` contiguous
        shards (ray.put once each, media once per shard); each rank splits its shard into the mini-batches and
        all-reduces the per-mini-batch counts and the metrics itself (`TrainerWorker.train`). Returns rank 0's
        metrics (identical on every rank): per-step means, counts and times summed."""
        import ray

        if num_minibatches < 1:
            raise ValueError(f"num_minibatches must be >= 1, got {num_minibatches}")
        t = time.perf_counter()
        count = self.objective.count(batch)  # the step-wide normaliser, computed once here (the ranks check it)
        shards = [ray.put(s) for s in batch.split(self.num_workers, unit=self.objective.unit)]
        per_rank = self._get([a.train.remote(s, global_num_seqs=count, num_minibatches=num_minibatches)
                              for a, s in zip(self.workers, shards)], "train")
        return {**per_rank[0], "train/time_s": time.perf_counter() - t}

    def train_step(self, batch: TrainBatch, *, global_num_seqs: float | None = None) -> dict[str, float]:
        """One optimizer step over `batch` (scattered across the ranks), with an explicit global count."""
        t = time.perf_counter()
        count = self.objective.count(batch) if global_num_seqs is None else global_num_seqs
        shards = batch.split(self.num_workers, unit=self.objective.unit)
        per_rank = self._get([a.train_step.remote(s, global_num_seqs=count) for a, s in zip(self.workers, shards)],
                             "train_step")
        return {**reduce_metrics(per_rank, self.objective), "train/time_s": time.perf_counter() - t}

    def compute_logp(self, batch: TrainBatch) -> list[list[float]]:
        parts = self._get([a.compute_logp.remote(s) for a, s in zip(self.workers, batch.split(self.num_workers))],
                          "compute_logp")
        return [row for part in parts for row in part]

    def _get(self, refs: list[Any], what: str) -> list[Any]:
        """ray.get of one call per rank, failing fast (not after a collective timeout) and naming the rank when an
        actor dies or raises."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        rank_of = {ref: r for r, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    ray.get(ref)
                except RayActorError as e:
                    raise RuntimeError(f"trainer rank {rank_of[ref]} died during {what}: {e}") from e
                except RayTaskError as e:
                    raise RuntimeError(f"trainer rank {rank_of[ref]} failed in {what}: {e}") from e
        return ray.get(refs)

    # ------------------------------------------------------------------------------------ weights + checkpoints
    def state_dict_chunks(self, max_bytes: int | None = None) -> list[list[tuple[str, Any]]]:
        import ray

        actors = self.workers if self.sharded else self.workers[:1]
        return self._get([a.state_dict_chunks.remote(max_bytes or self.refit_chunk_bytes) for a in actors],
                         "weights")[0]

    def weight_stream(self, max_bytes: int | None = None) -> WeightStream:
        """The current weights as a stream of chunk refs for `RolloutGroup.update_weights` (module docstring)."""
        return WeightStream(self, max_bytes or self.refit_chunk_bytes)

    def weights(self) -> list[tuple[str, Any]]:
        """All weights as [(checkpoint_name, tensor)] from rank 0 (the ranks are replicas; under fsdp2 every rank
        gathers them with rank 0, which returns them), for the vLLM refit."""
        return [kv for chunk in self.state_dict_chunks() for kv in chunk]

    def save(self, out_dir: str | Path) -> None:
        import ray

        self._get([a.save.remote(str(out_dir)) for a in self.workers], "save")

    def load(self, ckpt_dir: str | Path) -> None:
        import ray

        self._get([a.load.remote(str(ckpt_dir)) for a in self.workers], "load")

    def export_hf(self, out_dir: str | Path) -> None:
        import ray

        actors = self.workers if self.sharded else self.workers[:1]
        self._get([a.export_hf.remote(str(out_dir)) for a in actors], "export_hf")

    def info(self) -> list[dict[str, Any]]:
        import ray

        return self._get([a.info.remote() for a in self.workers], "info")

    def shutdown(self) -> None:
        import ray

        if not self.workers:
            return
        try:
            ray.get([a.shutdown.remote() for a in self.workers], timeout=30)
        finally:
            for a in self.workers:
                ray.kill(a, no_restart=True)
            self.workers = []
