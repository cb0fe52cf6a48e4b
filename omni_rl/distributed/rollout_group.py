"""A group of vLLM rollout workers hosted as Ray actors: sharding, media dedup, weight refit, fault handling.

* Media dedup: each prompt's vLLM inputs (token ids + decoded media) are `ray.put` ONCE per step and the ref is sent
  to the worker that owns the prompt; vLLM gets one request with n=G. The naive path (what verl/EasyR1 do) would
  ship the media G times. `media/physical_bytes` counts what was actually put in the object store.
* Weight refit: the trainer's tensors are `ray.put` ONCE and every worker loads them from the same object.
* Faults: a worker that dies (RayActorError) or does not answer within the timeout is killed, replaced by a fresh
  actor that loads the latest weights (and version), and its shard is retried, up to `max_retries` times; after
  that a RuntimeError says which worker failed and why. Nothing hangs: every `ray.get` has a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from omni_rl.data.types import Prompt, Rollout
from omni_rl.rollout.worker import RolloutWorker, cpu_env


def media_nbytes(obj: Any) -> int:
    """Bytes of the decoded media inside a vLLM input dict (numpy arrays, PIL images, tensors, (array, sr))."""
    if obj is None:
        return 0
    if isinstance(obj, dict):
        return sum(media_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(media_nbytes(v) for v in obj)
    if hasattr(obj, "nbytes"):
        return int(obj.nbytes)
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):
        return int(obj.element_size() * obj.nelement())
    if hasattr(obj, "size") and hasattr(obj, "mode"):  # PIL image
        w, h = obj.size
        return w * h * len(obj.getbands())
    return 0


# vLLM logs every engine step at INFO; the controller prints one summary line per step instead.
QUIET_ENV = {"VLLM_LOGGING_LEVEL": "WARNING", "TRANSFORMERS_VERBOSITY": "error"}


class RolloutGroup:
    def __init__(self, model_path: str, *, num_workers: int, worker_kwargs: dict[str, Any], sampling: dict[str, Any],
                 banned_token_ids: Sequence[int] = (), timeout_s: float = 600.0, refit_timeout_s: float = 120.0,
                 max_retries: int = 2, num_cpus_per_worker: float = 1.0):
        import ray

        self.model_path = str(model_path)
        self.worker_kwargs = dict(worker_kwargs)
        self.sampling = dict(sampling)
        self.banned_token_ids = list(banned_token_ids)
        self.timeout_s, self.refit_timeout_s, self.max_retries = timeout_s, refit_timeout_s, max_retries
        kv = int(self.worker_kwargs.get("kv_cache_gib", 1))
        self._actor_cls = ray.remote(num_cpus=num_cpus_per_worker, max_restarts=0,
                                     runtime_env={"env_vars": {**cpu_env(kv), **QUIET_ENV}})(RolloutWorker)
        self._weights_ref: Any = None  # latest weights, so a replacement worker can catch up
        self.version = 0
        self.workers = [self._spawn() for _ in range(num_workers)]
        ray.get([w.info.remote() for w in self.workers], timeout=self.timeout_s)
        self.replacements = 0

    def _spawn(self):
        return self._actor_cls.remote(self.model_path, **self.worker_kwargs)

    def _replace(self, i: int, why: str) -> None:
        import ray

        ray.kill(self.workers[i], no_restart=True)
        self.workers[i] = self._spawn()
        self.replacements += 1
        if self._weights_ref is not None:
            ray.get(self.workers[i].update_weights.remote(self._weights_ref, self.version),
                    timeout=self.refit_timeout_s)
        print(f"[rollout] worker {i} replaced ({why}); reloaded weights version {self.version}")

    def generate(self, prompts: Sequence[Prompt], *, n: int, seed: int) -> tuple[list[list[Rollout]], dict]:
        """G=n rollouts for every prompt, in prompt order, plus metrics (media bytes, retries)."""
        import ray

        refs = [ray.put(p.vllm_inputs) for p in prompts]  # once per prompt: the G rollouts share it
        physical = sum(media_nbytes(p.vllm_inputs.get("multi_modal_data")) for p in prompts)
        shards = _shard(len(prompts), len(self.workers))
        results: list[list[Rollout]] = [[] for _ in prompts]
        pending = {i: shard for i, shard in enumerate(shards) if shard}
        attempts = 0
        while pending:
            calls = {i: self.workers[i].generate.remote([refs[j] for j in shard], n=n,
                                                        seed=seed * 100_003 + shard[0], **self._sampling_kwargs())
                     for i, shard in pending.items()}
            failed: dict[int, list[int]] = {}
            for i, call in calls.items():
                try:
                    out = ray.get(call, timeout=self.timeout_s)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError,
                        ray.exceptions.ActorUnavailableError) as e:
                    failed[i] = pending[i]
                    self._fail(i, e, attempts)
                    continue
                for j, group in zip(pending[i], out):
                    results[j] = [_reindex(r, j) for r in group]
            pending, attempts = failed, attempts + 1
        return results, {"media/physical_bytes": float(physical), "rollout/replaced_workers": float(self.replacements)}

    def _sampling_kwargs(self) -> dict[str, Any]:
        return {**self.sampling, "banned_token_ids": self.banned_token_ids}

    def _fail(self, i: int, e: BaseException, attempts: int) -> None:
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        if attempts >= self.max_retries:
            raise RuntimeError(f"rollout worker {i} failed {attempts + 1} times; last error: {why}") from e
        self._replace(i, why)

    def update_weights(self, weights: Sequence[tuple[str, Any]], *, version: int) -> float:
        """Push HF-named tensors to every worker (one object-store copy); returns seconds."""
        import ray

        t0 = time.perf_counter()
        self._weights_ref = ray.put(list(weights))
        self.version = version
        calls = [w.update_weights.remote(self._weights_ref, version) for w in self.workers]
        try:
            ray.get(calls, timeout=self.refit_timeout_s)
        except ray.exceptions.GetTimeoutError as e:
            raise RuntimeError(f"weight refit to version {version} did not finish within "
                               f"{self.refit_timeout_s:.0f}s (rollout.refit_timeout_s)") from e
        except ray.exceptions.RayActorError:
            for i, w in enumerate(self.workers):  # a dead worker gets replaced with the new weights
                try:
                    ray.get(w.info.remote(), timeout=self.refit_timeout_s)
                except ray.exceptions.RayActorError as e:
                    self._replace(i, f"died during refit: {type(e).__name__}")
        return time.perf_counter() - t0

    def shutdown(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w, no_restart=True)
        self.workers = []


def _shard(n_items: int, n_workers: int) -> list[list[int]]:
    """Contiguous, balanced shards (sizes differ by at most one)."""
    base, extra = divmod(n_items, n_workers)
    out, start = [], 0
    for i in range(n_workers):
        size = base + (1 if i < extra else 0)
        out.append(list(range(start, start + size)))
        start += size
    return out


def _reindex(r: Rollout, prompt_index: int) -> Rollout:
    r.prompt_index = prompt_index
    return r
