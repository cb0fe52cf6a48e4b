"""A group of vLLM rollout workers hosted as Ray actors: placement, sharding, media dedup, weight refit, faults.

* Placement: one placement group with one bundle per worker (`{"CPU": c}`, plus `{"GPU": tp}` when the cluster has
  GPUs); worker i always lives in bundle i, its replacement too.
* Sharding: the step's prompts are split into contiguous, balanced shards, one per worker; results come back in
  prompt order. A prompt's rollouts depend only on (seed, prompt index), not on its worker (see
  `omni_rl.rollout.worker.request_seed`).
* Media dedup (`omni_rl.rollout.dedup`): each distinct prompt's vLLM inputs (token ids + decoded media) are
  `ray.put` ONCE per step and only the ref goes to the worker that serves the prompt, which sends ONE request with
  n=G. Media never travels back. The step metrics count unique / logical (G copies) / physical / sent bytes.
* Weight refit, streamed (a `WeightStream` from `TrainerGroup.weight_stream()`): every worker starts ONE
  `load_weight_stream` call, then each chunk's object ref (made by trainer rank 0) is fed to every worker in turn
  (`feed_weights`, on a second actor thread, returns once the worker has taken the previous chunk). Neither the driver
  nor a worker ever holds more than about one chunk, so the refit's extra memory is a chunk, not the model. A
  replacement worker catches up by streaming the trainer's weights again. Weights given as a list (tests,
  benchmarks) are `ray.put` ONCE in chunks and the refs kept for replacements.
* Streaming (`stream`, the offline jobs): chunks of prompts go to whichever worker has fewer than
  `calls_per_worker` calls queued, as workers free up; each prompt carries its own seed; results come back as they
  finish. The same fault rules apply per chunk, and a chunk that keeps failing comes back with an error instead of
  stopping the stream.
* Faults: every wait has a deadline. A worker that dies (RayActorError) or does not answer a generate call within
  `timeout_s` is killed, replaced in its bundle (latest weights reloaded) and its shard retried, up to
  `max_retries` times; then a RuntimeError names the worker and the last error. An exception raised inside a worker
  (a bug, not a fault) is re-raised at once. A refit that does not finish within `refit_timeout_s` raises.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omni_rl.config.schema import RolloutConfig
from omni_rl.data.types import Prompt, Rollout
from omni_rl.distributed.ray_utils import (cluster_gpus, in_bundle, release_bundles, reserve_bundles,
                                           worker_bundle)
from omni_rl.rollout.dedup import media_bytes, media_metrics, unique_inputs
from omni_rl.rollout.worker import CPU_ENV, ENGINE_ENV, RolloutWorker

# vLLM logs every engine step at INFO; the controller prints one summary line per step instead.
QUIET_ENV = {"VLLM_LOGGING_LEVEL": "WARNING", "TRANSFORMERS_VERBOSITY": "error"}
REFIT_CHUNK_BYTES = 256 << 20  # a flat weight list is put in the object store in chunks of about this size


@dataclass
class Failure:
    """Why a worker call did not return: "died" (actor gone) or "timeout" (no answer before the deadline)."""

    kind: str
    detail: str


@dataclass
class Chunk:
    """A few prompts sent to one worker in one call by `RolloutGroup.stream`: vLLM inputs (`Prompt.vllm_inputs`),
    one request seed per prompt, and whatever the caller needs to match the results back (`meta`)."""

    inputs: list[dict[str, Any]]
    seeds: list[int]
    meta: Any = None


@dataclass
class ChunkResult:
    """`groups[i]`: the n rollouts of `chunk.inputs[i]`; None with `error` when the chunk could not be generated."""

    chunk: Chunk
    groups: list[list[Rollout]] | None
    error: str | None


class RolloutGroup:
    """`num_workers` RolloutWorker actors serving one model; `worker_kwargs` go to `RolloutWorker`, `sampling`
    (temperature, top_p, max_tokens, stop) to every `generate` (`omni_rl.wiring.groups.build_rollout_group` builds
    it from the config).

    Shape shared with `omni_rl.training.group.TrainerGroup`: built as `(model_path, *, num_workers,
    num_cpus_per_worker, num_gpus_per_worker, resources, ...)`; `num_workers`; `workers` (the Ray actor handles, in
    worker order; a replaced worker takes its index); `node_ids` (the Ray node of each); `start_seconds` (the
    slowest worker's own start-up, measured inside it); `shutdown()` (idempotent)."""

    def __init__(self, model_path: str, *, num_workers: int, worker_kwargs: Mapping[str, Any],
                 sampling: Mapping[str, Any], banned_token_ids: Sequence[int] = (),
                 timeout_s: float = RolloutConfig.timeout_s, refit_timeout_s: float = RolloutConfig.refit_timeout_s,
                 max_retries: int = RolloutConfig.max_retries, num_cpus_per_worker: float = 1.0,
                 num_gpus_per_worker: float | None = RolloutConfig.num_gpus_per_worker,
                 placement_strategy: str = RolloutConfig.placement_strategy,
                 resources: Mapping[str, float] | None = None):
        """`num_gpus_per_worker=None`: the engine's tensor-parallel size when the cluster has GPUs, else 0."""
        import ray

        self.model_path = str(model_path)
        self.num_workers = num_workers
        self.worker_kwargs = dict(worker_kwargs)
        self.sampling = dict(sampling)
        self.banned_token_ids = [int(t) for t in banned_token_ids]
        self.timeout_s, self.refit_timeout_s, self.max_retries = timeout_s, refit_timeout_s, max_retries
        if num_gpus_per_worker is None:
            tp = int(worker_arg(self.worker_kwargs, "tensor_parallel_size"))
            num_gpus_per_worker = float(tp) if cluster_gpus() > 0 else 0.0
        env = {**ENGINE_ENV, **QUIET_ENV, **({} if num_gpus_per_worker > 0 else CPU_ENV)}
        # "feed": feed_weights runs beside load_weight_stream (the default group stays one call at a time)
        self._actor_cls = ray.remote(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker, max_restarts=0,
                                     concurrency_groups={"feed": 1}, runtime_env={"env_vars": env})(RolloutWorker)
        self._pg = reserve_bundles([worker_bundle(num_cpus_per_worker, num_gpus_per_worker, resources)] * num_workers,
                                   strategy=placement_strategy, timeout_s=timeout_s, name="rollout workers")
        self._weights_refs: list[Any] | None = None  # latest weights, so a replacement worker can catch up
        self._weight_stream: Any = None  # ... or the stream they came from
        self._streams = 0
        self.version = 0
        self.replacements = 0
        self.workers = [self._spawn(i) for i in range(num_workers)]
        done, failed = self._gather({w.info.remote(): i for i, w in enumerate(self.workers)}, timeout_s)
        if failed:
            self.shutdown()
            raise RuntimeError(f"rollout workers failed to start: {_describe(failed)}")
        self.start_seconds = max(info["start_seconds"] for info in done.values())
        self.node_ids = [done[i]["node_id"] for i in range(num_workers)]  # where each worker runs (now)
        # media bytes sent to the workers of each Ray node (a prompt's media goes to the node that serves it, once
        # per call; a call re-sent after a failure counts again)
        self.media_bytes_by_node: dict[str, int] = {}

    # ---------------------------------------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Prompt], *, n: int, seed: int,
                 sampling: Mapping[str, Any] | None = None) -> tuple[list[list[Rollout]], dict[str, float]]:
        """G=n rollouts for every prompt, in prompt order (rollout.prompt_index = position in `prompts`), plus
        metrics: media accounting (`omni_rl.rollout.dedup`), retries, replaced workers. `sampling` overrides the
        group's sampling settings (and `banned_token_ids`) for this call, e.g. `{"temperature": 0.0}`."""
        import ray

        inputs, slot = unique_inputs(prompts)
        refs = [ray.put(x) for x in inputs]  # ONCE per distinct prompt: its G rollouts share it
        physical = sum(media_bytes(x) for x in inputs)
        params = {"banned_token_ids": self.banned_token_ids, **self.sampling, **(sampling or {})}
        results: list[list[Rollout]] = [[] for _ in prompts]
        pending = {w: shard for w, shard in enumerate(shard_indices(len(prompts), len(self.workers))) if shard}
        sent, retries = 0, 0
        while pending:
            calls = {}
            for w, shard in pending.items():
                mine = sorted({slot[j] for j in shard})
                nbytes = sum(media_bytes(inputs[s]) for s in mine)
                sent += nbytes
                self._count_media(w, nbytes)
                calls[self.workers[w].generate.remote([refs[slot[j]] for j in shard], n=n, seed=seed,
                                                      prompt_offset=shard[0], **params)] = w
            done, failed = self._gather(calls, self.timeout_s)
            for w, groups in done.items():
                for j, group in zip(pending[w], groups):
                    results[j] = group
            if failed and retries >= self.max_retries:
                raise RuntimeError(f"rollout generate failed after {retries} retries: {_describe(failed)}")
            for w, failure in failed.items():
                self._replace(w, failure)
            pending = {w: pending[w] for w in failed}
            retries += bool(failed)
        return results, {**media_metrics(prompts, n=n, physical_bytes=physical, sent_bytes=sent),
                         "rollout/retries": float(retries), "rollout/replaced_workers": float(self.replacements)}

    def stream(self, chunks: Iterable[Chunk], *, n: int, calls_per_worker: int = 2,
               sampling: Mapping[str, Any] | None = None) -> Iterator[ChunkResult]:
        """Generate for a stream of chunks, each worker kept busy: a chunk goes to a worker as soon as it has fewer
        than `calls_per_worker` calls outstanding (no lock-step batches), and results come back as they finish (not
        in input order). `chunks` is consumed lazily, so only the chunks in flight are held in memory.

        Each chunk's prompts are `ray.put` once and sent with one seed per prompt (`RolloutWorker.generate(seeds=)`),
        so a prompt's rollouts depend on its seed only, not on the worker, the chunk or the order. A worker that dies
        or whose oldest call gets no answer within `timeout_s` is replaced and its outstanding chunks re-sent; a chunk
        that failed `max_retries + 1` times comes back with `error` set (the caller records its prompts as failed)
        and the stream goes on. An exception raised inside a worker is re-raised."""
        import ray

        params = {"banned_token_ids": self.banned_token_ids, **self.sampling, **(sampling or {})}
        num = len(self.workers)
        queues: list[deque[Any]] = [deque() for _ in range(num)]  # refs in submission order, per worker
        head_since = [0.0] * num  # when the worker's oldest outstanding call became its oldest
        calls: dict[Any, tuple[int, Chunk, list[Any], int]] = {}  # ref -> (worker, chunk, prompt refs, attempt)
        source = iter(chunks)
        exhausted = False

        def submit(w: int, chunk: Chunk, refs: list[Any], attempt: int) -> None:
            ref = self.workers[w].generate.remote(refs, n=n, seeds=list(chunk.seeds), **params)
            if not queues[w]:
                head_since[w] = time.monotonic()
            queues[w].append(ref)
            calls[ref] = (w, chunk, refs, attempt)

        def fail_worker(w: int, failure: Failure) -> list[ChunkResult]:
            """Replace worker w; re-send its outstanding chunks, or give them up after max_retries."""
            lost = [calls.pop(ref) for ref in queues[w]]
            queues[w].clear()
            self._replace(w, failure)
            given_up = []
            for _, chunk, refs, attempt in lost:
                if attempt >= self.max_retries:
                    given_up.append(ChunkResult(chunk, None, f"rollout failed {attempt + 1} times, last on worker "
                                                            f"{w}: {failure.kind} ({failure.detail})"))
                else:
                    submit(w, chunk, refs, attempt + 1)
                    self._count_media(w, sum(media_bytes(x) for x in chunk.inputs))
            return given_up

        while True:
            for w in range(num):  # fill every worker up to its depth, pulling (rendering) chunks lazily
                while not exhausted and len(queues[w]) < calls_per_worker:
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                        break
                    submit(w, chunk, [ray.put(x) for x in chunk.inputs], 0)
                    self._count_media(w, sum(media_bytes(x) for x in chunk.inputs))
            if not calls:
                return
            now = time.monotonic()
            wait_s = min(head_since[w] + self.timeout_s - now for w in range(num) if queues[w])
            ready, _ = ray.wait([q[0] for q in queues if q], num_returns=1, timeout=max(0.0, wait_s))
            if not ready:
                for w in range(num):
                    if queues[w] and time.monotonic() - head_since[w] >= self.timeout_s:
                        yield from fail_worker(w, Failure("timeout", f"no answer within {self.timeout_s:g}s"))
                continue
            ref = ready[0]
            w, chunk, _, _ = calls[ref]
            try:
                groups = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                yield from fail_worker(w, Failure("died", f"{type(e).__name__}: {_first_line(e)}"))
                continue
            except ray.exceptions.RayTaskError as e:
                raise RuntimeError(f"rollout worker {w} raised: {e}") from e
            del calls[ref]
            queues[w].popleft()
            head_since[w] = time.monotonic()
            yield ChunkResult(chunk, groups, None)

    # ------------------------------------------------------------------------------------------------- refit
    def update_weights(self, weights: Any, *, version: int) -> float:
        """Load new weights into every worker in place and tag later rollouts with `version`; returns seconds.

        `weights`: a `WeightStream` (`TrainerGroup.weight_stream()`: streamed chunk by chunk, module docstring), or
        [(checkpoint_name, tensor)] (chunked here) / a list of such chunks, each `ray.put` ONCE for all workers. A
        worker that dies meanwhile is replaced (and loads these weights); one that does not finish within
        `refit_timeout_s` raises a RuntimeError."""
        import ray

        t0 = time.perf_counter()
        everyone = range(len(self.workers))
        if hasattr(weights, "chunk_refs"):
            failed = self._stream_to(everyone, weights, version)
            self._weights_refs, self._weight_stream = None, weights
        else:
            refs = [ray.put(chunk) for chunk in as_chunks(weights, REFIT_CHUNK_BYTES)]
            calls = {w.update_weights.remote(refs, version): i for i, w in enumerate(self.workers)}
            _, failed = self._gather(calls, self.refit_timeout_s)  # a worker that raised (bad weights) raises here
            self._weights_refs, self._weight_stream = refs, None
        timeouts = {w: f for w, f in failed.items() if f.kind == "timeout"}
        if timeouts:
            raise RuntimeError(f"weight refit to version {version} did not finish within {self.refit_timeout_s:g}s "
                               f"(rollout.refit_timeout_s): {_describe(timeouts)}")
        self.version = version
        for w, failure in failed.items():  # died during the refit: the replacement loads the new weights
            self._replace(w, failure)
        return time.perf_counter() - t0

    def _stream_to(self, indices: Iterable[int], stream: Any, version: int) -> dict[int, Failure]:
        """Stream `stream`'s chunks into the workers `indices` (one `load_weight_stream` each, fed chunk by chunk);
        returns the workers that died or timed out. The driver holds the ref of one chunk at a time."""
        self._streams += 1
        token = f"v{version}.{self._streams}"
        deadline = time.monotonic() + self.refit_timeout_s
        left = lambda: max(0.0, deadline - time.monotonic())  # noqa: E731
        loads = {self.workers[i].load_weight_stream.remote(version, stream.plan, token, self.refit_timeout_s): i
                 for i in indices}
        failed: dict[int, Failure] = {}
        for ref in stream.chunk_refs():
            feeds = {self.workers[i].feed_weights.options(concurrency_group="feed").remote(token, [ref], left()): i
                     for i in loads.values() if i not in failed}
            done, lost = self._gather(feeds, left())
            failed.update(lost)
            if not all(done.values()):  # a stream ended early: its load call says why (below)
                break
            del ref
        done, lost = self._gather({ref: i for ref, i in loads.items() if i not in failed}, left())
        failed.update(lost)
        return failed

    # ---------------------------------------------------------------------------------------------- workers
    def _count_media(self, worker: int, nbytes: int) -> None:
        node = self.node_ids[worker]
        self.media_bytes_by_node[node] = self.media_bytes_by_node.get(node, 0) + int(nbytes)

    def _spawn(self, index: int) -> Any:
        return self._actor_cls.options(scheduling_strategy=in_bundle(self._pg, index)).remote(
            self.model_path, **self.worker_kwargs)

    def _replace(self, index: int, failure: Failure) -> None:
        """Kill worker `index`, start a new one in its bundle and bring it to the latest weights and version.

        A replacement that dies while starting is started again, up to `max_retries` times: when a whole node
        fails, Ray may place the replacement on it before it knows the node is gone, and moves the bundle to another
        node (placement strategy permitting, e.g. SPREAD) once it does."""
        import ray

        for attempt in range(self.max_retries + 1):
            ray.kill(self.workers[index], no_restart=True)
            self.workers[index] = self._spawn(index)
            done, failed = self._gather({self.workers[index].info.remote(): index}, self.timeout_s)
            if index in done:  # its bundle may have moved to another node (the old node died)
                self.node_ids[index] = done[index]["node_id"]
                break
            if failed[index].kind != "died" or attempt == self.max_retries:
                raise RuntimeError(f"replacement for rollout worker {index} failed to start ({attempt + 1} "
                                   f"attempt(s)): {_describe(failed)}; it replaced the worker because of "
                                   f"{failure.kind}: {failure.detail}")
        self.replacements += 1
        worker = self.workers[index]
        if self._weights_refs is not None:
            failed = self._gather({worker.update_weights.remote(self._weights_refs, self.version): index},
                                  self.refit_timeout_s)[1]
        elif self._weight_stream is not None:  # the trainer has not stepped since: stream its weights again
            failed = self._stream_to([index], self._weight_stream, self.version)
        else:
            failed = {}
        if failed:
            raise RuntimeError(f"replacement for rollout worker {index} failed to load weights version "
                               f"{self.version}: {_describe(failed)}; it replaced the worker because of "
                               f"{failure.kind}: {failure.detail}")
        print(f"[rollout] worker {index} replaced ({failure.kind}: {failure.detail}); "
              f"weights version {self.version}", flush=True)

    @staticmethod
    def _gather(calls: Mapping[Any, int], timeout_s: float) -> tuple[dict[int, Any], dict[int, Failure]]:
        """Wait for `calls` (ref -> worker index) until `timeout_s` from now: results of those that returned, and a
        Failure for those whose actor died or that did not answer in time. An exception raised inside a worker is
        re-raised as a RuntimeError naming the worker."""
        import ray

        deadline = time.monotonic() + timeout_s
        done: dict[int, Any] = {}
        failed: dict[int, Failure] = {}
        pending = list(calls)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            ref = ready[0]
            try:
                done[calls[ref]] = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                failed[calls[ref]] = Failure("died", f"{type(e).__name__}: {_first_line(e)}")
            except ray.exceptions.RayTaskError as e:
                raise RuntimeError(f"rollout worker {calls[ref]} raised: {e}") from e
        for ref in pending:
            failed[calls[ref]] = Failure("timeout", f"no answer within {timeout_s:g}s")
        return done, failed

    def shutdown(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w, no_restart=True)
        self.workers = []
        if self._pg is not None:
            release_bundles(self._pg)
            self._pg = None


def worker_arg(worker_kwargs: Mapping[str, Any], name: str) -> Any:
    """`worker_kwargs[name]`, or RolloutWorker's own default for it (defaults live in one place: its signature)."""
    import inspect

    if name in worker_kwargs:
        return worker_kwargs[name]
    return inspect.signature(RolloutWorker).parameters[name].default


def shard_indices(n_items: int, n_workers: int) -> list[list[int]]:
    """Contiguous, balanced shards of range(n_items), one per worker (sizes differ by at most one)."""
    base, extra = divmod(n_items, n_workers)
    out, start = [], 0
    for i in range(n_workers):
        size = base + (1 if i < extra else 0)
        out.append(list(range(start, start + size)))
        start += size
    return out


def as_chunks(weights: Sequence[Any], max_bytes: int) -> list[list[tuple[str, Any]]]:
    """`weights` as a list of chunks: a list of chunks is returned as is; a flat [(name, tensor)] list is cut into
    consecutive chunks of at most `max_bytes` (a bigger tensor is a chunk of its own)."""
    items = list(weights)
    if not items or not _is_pair(items[0]):
        return [list(c) for c in items]
    chunks: list[list[tuple[str, Any]]] = [[]]
    size = 0
    for name, tensor in items:
        nbytes = tensor.numel() * tensor.element_size()
        if chunks[-1] and size + nbytes > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append((name, tensor))
        size += nbytes
    return chunks


def _is_pair(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else ""


def _describe(failed: Mapping[int, Failure]) -> str:
    return "; ".join(f"worker {w} {f.kind} ({f.detail})" for w, f in sorted(failed.items()))
