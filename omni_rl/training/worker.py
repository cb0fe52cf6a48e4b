"""Trainer worker: one data-parallel rank holding the HF policy, its optimizer and scheduler.

A plain class (tests drive it in-process, also as real 2-process gloo groups); `omni_rl.training.group.TrainerGroup`
hosts one per rank as a Ray actor. The narrow interface a second backend (Megatron-Core) would implement:

    train(batch, *, num_minibatches) -> metrics              k optimizer steps on this rank's shard (all-reduced)
    train_step(batch, *, global_num_seqs) -> metric sums     one optimizer step on this rank's shard (primitive)
    compute_logp(batch) -> [[float]]                          per-token logp of every response (no grad)
    weights() -> [(checkpoint_name, tensor)]                  every weight (frozen included), for the vLLM refit
    weight_plan(max_bytes) / weight_chunk(i, max_bytes)      the weights in whole-block chunks, one chunk per call:
                                                              the streamed vLLM refit (omni_rl.training.group)
    state_dict_chunks(max_bytes) -> [[(checkpoint_name, tensor)]]   every chunk at once, for checkpoints
    save(dir) / load(dir) / export_hf(dir)

Loss normalisation (the rule of `omni_rl.algorithms.normalization`): each micro-batch backpropagates
sum_i(w_i * L_i) / global_num_seqs, where `global_num_seqs` is the weighted sequence count of the WHOLE optimizer step
over all ranks (computed once by the caller); gradients accumulate over micro-batches and are SUM-all-reduced over
ranks. Then clip, AdamW step, scheduler step. Result: 1 rank x 1 micro-batch == R ranks x M micro-batches exactly.

Old log-probs: a sequence without `old_logp` is on-policy (its ratio uses this forward's own detached logp, exact
when the rollout batch is one optimizer step); with several mini-batches `train` fills `old_logp` with one no-grad
pass before the first update.

`train` (what the group calls once per rollout batch): this rank's shard is split into `num_minibatches` contiguous
mini-batches; mini-batch j of the step is the union of every rank's j-th piece. Before the first update, when needed,
one no-grad pass over the shard gives (a) `old_logp` (k > 1), (b) the train-vs-rollout mismatch metrics and (c) the
`max_logprob_error` mask, folded into the sequence weights so masked sequences leave the normalisation count too
(the rule of `omni_rl.algorithms.normalization`). The per-mini-batch global weighted counts are ONE all-reduce of
k floats; metrics are all-reduced (sums / max) so every rank returns the same dict.

Freezing: `freeze` maps groups of `omni_rl.models.parts.param_groups` (vision_encoder, audio_encoder, projector,
lm_body, lm_embeddings, lm_head, router) to bools (the shape of the config's `trainer.freeze`); frozen parameters get
requires_grad=False and no optimizer state. Text RL: every group but lm_body and lm_head frozen.

Strategies (`strategy`): "replicated" (every rank holds the whole model and its AdamW state; gradients are
SUM-all-reduced) or "fsdp2" (`omni_rl.training.fsdp`: parameters, gradients and optimizer state sharded with
`fully_shard`, one unit per decoder layer plus a root unit; the same exactness holds, tests/training/test_dp_exact.py).
Under fsdp2 every rank takes part in every forward, weight gather and checkpoint (ranks with fewer micro-batches run
padding ones) and the trainer state is one pair of files per rank (resume with the same number of ranks).

The objective (`objective`: an `omni_rl.training.objectives.Objective`, built by the controller from `algorithm.*`;
None: the schema's default algorithm) computes each micro-batch's per-unit losses and weights, owns any state across
steps (checkpointed with the trainer state) and says whether it needs a frozen reference copy of the initial policy
(`uses_reference`, e.g. for a KL term): the worker then loads one and hands the objective a function that
scores the micro-batch under it. The worker never branches on which objective it trains.
The model is kept in eval mode (no dropout) for both scoring and training.
"""

from __future__ import annotations

import copy
import math
import os

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from omni_rl.algorithms.normalization import normalized_sum
from omni_rl.config.schema import ADAM_BETAS, LR_SCHEDULES, AlgorithmConfig, ModelConfig, RunConfig, TrainerConfig
from omni_rl.training.batch import TrainBatch
from omni_rl.training.forward import score
from omni_rl.training.objectives import default_objective
from omni_rl.training.objectives.base import (COMMON_MAX_KEYS, COMMON_SUM_KEYS, MISMATCH_KEYS, Objective,
                                              logprob_mismatch, reduce_mismatch)

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily

WEIGHTS_FILE = "model.safetensors"
STATE_STEM = "trainer_state"  # + .json / .safetensors (omni_rl.training.state); fsdp2: + .rank<r>


class TrainerWorker:
    # Defaults are the schema's (omni_rl.config.schema); `warmup_steps` has none: every caller states its warm-up.
    def __init__(self, model_path: str, *, family: ModelFamily, dtype: str = ModelConfig.dtype,
                 device: str = "cpu", rank: int = 0, world_size: int = 1, master_addr: str | None = None,
                 master_port: int | None = None, freeze: Mapping[str, bool] | None = None, lr: float = TrainerConfig.lr,
                 warmup_steps: int, lr_schedule: str = TrainerConfig.lr_schedule, total_steps: int | None = None,
                 min_lr_ratio: float = TrainerConfig.min_lr_ratio, weight_decay: float = TrainerConfig.weight_decay,
                 betas: Sequence[float] = ADAM_BETAS, grad_clip: float | None = TrainerConfig.grad_clip,
                 micro_batch_size: int = TrainerConfig.micro_batch_size,
                 encoder_once: bool = TrainerConfig.encoder_once, objective: Objective | None = None,
                 max_logprob_error: float | None = AlgorithmConfig.max_logprob_error,
                 temperature: float = 1.0, seed: int = RunConfig.seed,  # 1.0: vLLM's logprobs are pre-temperature
                 num_threads: int | None = None, trust_remote_code: bool = ModelConfig.trust_remote_code,
                 strategy: str = TrainerConfig.strategy,
                 activation_checkpointing: bool = TrainerConfig.activation_checkpointing,
                 mixed_precision: str | None = TrainerConfig.mixed_precision,
                 prompt_once: bool = TrainerConfig.prompt_once, packing: bool | None = TrainerConfig.packing):
        from omni_rl.models.policy import load_model

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        torch.manual_seed(seed + rank)
        self.model_path = Path(model_path)
        self.family = family  # resolved once by the caller (omni_rl.models.families.resolve_family)
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.micro_batch_size = micro_batch_size
        self.encoder_once = encoder_once
        self.prompt_once = prompt_once
        if prompt_once and activation_checkpointing:
            raise ValueError("prompt_once with activation_checkpointing: a recomputed layer would append its keys / "
                             "values to the prompt cache a second time; choose one")
        self.max_logprob_error = max_logprob_error
        self.temperature = temperature
        self.grad_clip = grad_clip
        self.step = 0
        from omni_rl.training.fsdp import STRATEGIES

        if strategy not in STRATEGIES:
            raise ValueError(f"trainer strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.sharded = strategy == "fsdp2"
        if mixed_precision not in (None, "bfloat16"):
            raise ValueError(f"mixed_precision={mixed_precision!r}: None (train in `dtype`) or 'bfloat16'")
        if mixed_precision is not None:
            if not self.sharded:
                raise ValueError("mixed_precision needs strategy='fsdp2' (FSDP2's MixedPrecisionPolicy)")
            dtype = "float32"  # fp32 master weights and AdamW state; FSDP2 casts to bf16 for the compute
        self.mixed_precision = mixed_precision
        if world_size > 1 or self.sharded:  # FSDP2 needs a process group even with one rank
            from omni_rl.training.dist import default_backend, init_process_group

            if master_addr is None or master_port is None:
                raise ValueError(f"world_size {world_size} with strategy {strategy} needs master_addr and master_port")
            init_process_group(rank=rank, world_size=world_size, master_addr=master_addr, master_port=master_port,
                               backend=default_backend(self.device))
        self.trust_remote_code = trust_remote_code
        # fsdp2: built on the meta device and sharded first; each rank then reads only its shards (load_sharded)
        self.model = load_model(model_path, dtype, family=self.family, trust_remote_code=trust_remote_code,
                                empty=self.sharded)
        if not self.sharded:
            self.model = self.model.to(self.device)
        self.fwd = family.forward(self.model)
        if prompt_once and not self.fwd.prompt_once:
            raise ValueError(f"trainer.prompt_once: family {self.family.name!r} has no prompt-once forward "
                             f"({self.fwd.prompt_once_missing}); set trainer.prompt_once=false")
        if packing and not self.fwd.packing:
            raise ValueError(f"trainer.packing=true: family {self.family.name!r} cannot pack sequences "
                             f"({self.fwd.packing_missing}); set trainer.packing=null (pack where the family "
                             "can) or false")
        self.packing = self.fwd.packing if packing is None else packing  # None: wherever the family can
        self.frozen = self._freeze(freeze or {})
        self.shell = None
        if activation_checkpointing:  # before sharding (composes with FSDP2 in that order)
            from omni_rl.training.fsdp import checkpoint_layers

            checkpoint_layers(self.fwd.decoder())
        if self.sharded:  # after freezing (units see requires_grad), before the optimizer (it holds the shards)
            from omni_rl.training.fsdp import load_sharded, shard

            self.shell = shard(self.model, self.fwd.decoder(),
                               mp_dtype=torch.bfloat16 if mixed_precision == "bfloat16" else None)
            load_sharded(self.model, model_path, self.checkpoint_name, self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"every parameter is frozen (freeze={dict(freeze or {})})")
        # this rank's own copy (as a Ray actor gets by pickling): its state is the rank's, not the caller's object's
        self.objective: Objective = copy.deepcopy(objective) if objective is not None else default_objective()
        self.ref_fwd = self._reference(model_path, dtype) if self.objective.uses_reference else None
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, betas=(betas[0], betas[1]), weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_factor(warmup_steps, lr_schedule, total_steps=total_steps, min_ratio=min_lr_ratio))

    # ------------------------------------------------------------------------------------------------ setup
    def _freeze(self, freeze: Mapping[str, bool]) -> dict[str, int]:
        """requires_grad=False for every group mapped to True; returns {frozen group: number of tensors}."""
        from omni_rl.models.parts import GROUPS, param_groups

        unknown = set(freeze) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
        groups = param_groups(self.model, self.family)
        params = dict(self.model.named_parameters())
        frozen = [g for g, on in freeze.items() if on]
        for g in frozen:
            for name in groups[g]:
                params[name].requires_grad_(False)
        return {g: len(groups[g]) for g in frozen}

    def _reference(self, model_path: str, dtype: str) -> Any:
        """A frozen copy of the initial policy, for an objective that `uses_reference`."""
        from omni_rl.models.policy import load_model

        ref = load_model(model_path, dtype, family=self.family, trust_remote_code=self.trust_remote_code)
        ref = ref.to(self.device).eval().requires_grad_(False)
        return self.family.forward(ref)

    def info(self) -> dict[str, Any]:
        n_train = sum(p.numel() for p in self.params)
        n_all = sum(p.numel() for p in self.model.parameters())
        return {"rank": self.rank, "world_size": self.world_size, "family": self.family.name, "step": self.step,
                "trainable_params": n_train, "total_params": n_all, "frozen_tensors": self.frozen,
                "device": str(self.device), "node_id": _node_id(), "pid": os.getpid()}

    # ----------------------------------------------------------------------------------------------- training
    def train(self, batch: TrainBatch, *, global_num_seqs: float | None = None,
              num_minibatches: int = 1) -> dict[str, float]:
        """`num_minibatches` optimizer steps on this rank's shard (see the module docstring); every rank must call it
        with the same `num_minibatches`. `global_num_seqs` (the whole batch's weighted count) is only checked: the
        per-mini-batch counts are all-reduced here. Returns the step metrics, identical on every rank."""
        if num_minibatches < 1:
            raise ValueError(f"num_minibatches must be >= 1, got {num_minibatches}")
        k = num_minibatches
        t0 = time.perf_counter()
        obj = self.objective
        pre: dict[str, float] = {}
        needs_old = obj.uses_old_logp and k > 1 and any(s.old_logp is None for s in batch.sequences)
        prepass = needs_old or self.max_logprob_error is not None
        given = obj.count(batch)
        if prepass:
            batch, pre = self._prepare(batch, fill_old_logp=needs_old)
        pieces = batch.split(k, unit=obj.unit)
        counts = [obj.count(p) for p in pieces] + [float(p.num_sequences) for p in pieces] + [given]
        if self.world_size > 1:
            from omni_rl.training.dist import all_reduce_sum

            counts = all_reduce_sum(counts, self.device)
        if global_num_seqs is not None and abs(counts[2 * k] - global_num_seqs) > 1e-6 * max(1.0, global_num_seqs):
            raise ValueError(f"global_num_seqs={global_num_seqs} but the ranks' shards weigh {counts[2 * k]}")
        steps = []
        for j, piece in enumerate(pieces):
            if counts[k + j] == 0:  # no rank has a sequence for this mini-batch: no optimizer step
                continue
            sums = self.train_step(piece, global_num_seqs=counts[j], logprob_mask=not prepass)
            steps.append(reduce_metrics(self._all_reduce_metrics(sums), obj))
        out = _combine_steps(steps, obj)
        if prepass:  # the mismatch was measured before any update (zeros where no sequence has rollout log-probs)
            per_rank = self._all_reduce_metrics({**dict.fromkeys(MISMATCH_KEYS, 0.0), **pre})
            out.update(reduce_mismatch(per_rank[0], per_rank))
        out["train/time_s"] = time.perf_counter() - t0
        return with_short_names(out)

    def _prepare(self, batch: TrainBatch, *, fill_old_logp: bool) -> tuple[TrainBatch, dict[str, float]]:
        """One no-grad pass before any update: old_logp (when asked), mismatch vs the rollout logp, and the
        `max_logprob_error` mask folded into the weights. Returns (new batch sharing the prompts, the mismatch sums
        and maxima; empty when no sequence carries rollout log-probs)."""
        from dataclasses import replace

        seqs = list(batch.sequences)  # (a micro-batch's own sequences index its own prompts: not these)
        stats: dict[str, float] = {}
        start = 0
        for mb, out in self._score_all(batch):
            weights, mismatch = logprob_mismatch(mb, out.logp, out.mask, self.max_logprob_error)
            _accumulate(stats, stats, mismatch)
            for i in range(mb.num_sequences):
                s = seqs[start + i]
                changes: dict[str, Any] = {}
                if fill_old_logp and s.old_logp is None:
                    changes["old_logp"] = out.logp[i, :len(s.response_ids)].tolist()
                if weights is not None and weights[i] != s.weight:
                    changes["weight"] = weights[i]
                seqs[start + i] = replace(s, **changes) if changes else s
            start += mb.num_sequences
        return TrainBatch(prompts=batch.prompts, sequences=seqs), stats

    def _all_reduce_metrics(self, sums: dict[str, float]) -> list[dict[str, float]]:
        """This rank's metric sums -> [the SUM over ranks] (max keys: MAX), as `reduce_metrics` input; keys that are
        neither (grad_norm, lr, the objective's state: the same on every rank) pass through."""
        if self.world_size == 1:
            return [sums]
        from omni_rl.training.dist import all_reduce_max, all_reduce_sum

        obj = self.objective
        sum_keys = [k for k in COMMON_SUM_KEYS + obj.sum_keys if k in sums]
        max_keys = [k for k in COMMON_MAX_KEYS + obj.max_keys if k in sums]
        out = dict(sums)
        out.update(zip(sum_keys, all_reduce_sum([sums[k] for k in sum_keys], self.device)))
        out.update(zip(max_keys, all_reduce_max([sums[k] for k in max_keys], self.device)))
        return [out]

    def _all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        if self.world_size == 1:
            return list(values)
        from omni_rl.training.dist import all_reduce_sum

        return all_reduce_sum(values, self.device)

    def _score_reference(self, mb: TrainBatch) -> Tensor:
        """[B, R] logp of `mb` under the frozen reference copy (no grad)."""
        with torch.no_grad():
            return score(self.ref_fwd, mb, encoder_once=self.encoder_once, temperature=self.temperature,
                         prompt_once=self.prompt_once, packing=self.packing).logp

    def train_step(self, batch: TrainBatch, *, global_num_seqs: float, logprob_mask: bool = True) -> dict[str, float]:
        """One optimizer step on this rank's shard; returns metric sums (COMMON_SUM_KEYS and the objective's), maxima,
        grad_norm, lr and the objective's `metrics()` after the step. `global_num_seqs` is the step's weighted count
        over all ranks (`objective.count`). `logprob_mask=False`: the caller already folded the `max_logprob_error`
        mask into the weights (and measured the mismatch before any update); this step neither masks nor measures."""
        from dataclasses import replace

        obj = self.objective
        sums = dict.fromkeys(COMMON_SUM_KEYS + obj.sum_keys, 0.0)
        maxes = dict.fromkeys(COMMON_MAX_KEYS + obj.max_keys, 0.0)
        self.optimizer.zero_grad(set_to_none=True)
        micro_batches = batch.chunks(self.micro_batch_size, unit=obj.unit)
        for _ in range(self._padding(len(micro_batches))):  # fsdp2: as many forwards as the busiest rank
            loss, _out = self._forward(self._pad_batch(), lambda out: out.logp.sum() * 0.0)
            loss.backward()
        for mb in micro_batches:
            t0 = time.perf_counter()
            held: list[Any] = []
            reference = (lambda mb=mb: self._score_reference(mb)) if self.ref_fwd is not None else None

            def micro_loss(out: Any, mb: TrainBatch = mb, held: list[Any] = held) -> Tensor:
                if logprob_mask:
                    weights, mismatch = logprob_mismatch(mb, out.logp.detach(), out.mask, self.max_logprob_error)
                    _accumulate(sums, maxes, mismatch)
                    if weights is not None:
                        mb = TrainBatch(prompts=mb.prompts, sequences=[
                            replace(s, weight=w) for s, w in zip(mb.sequences, weights)])
                held.append(obj.micro_loss(mb, out, reference))
                return normalized_sum(held[0].per_unit, held[0].weights, global_num_seqs)

            loss, out = self._forward(mb, micro_loss)
            res = held[0]
            loss.backward()
            sums["loss"] += float(loss.detach())
            sums["num_seqs"] += mb.num_sequences
            sums["num_weighted"] += float(res.weights.sum())
            sums["tokens"] += float(out.mask.sum())
            sums["media_encoded"] += out.media_encoded
            sums["encoder_forwards"] += out.encoder_forwards
            for key, value in res.sums.items():
                sums[key] += value
            for key, value in res.maxes.items():
                maxes[key] = max(maxes[key], value)
            maxes["forward_s"] += time.perf_counter() - t0  # this rank's total; the max over ranks is reported
        lr = self.optimizer.param_groups[0]["lr"]
        grad_norm = self._optimizer_step()
        obj.end_step(sums, self._all_reduce_sum)
        return {**sums, **maxes, **obj.metrics(), "grad_norm": grad_norm, "lr": lr, "step": float(self.step)}

    def _optimizer_step(self) -> float:
        """All-reduce (SUM) the grads, clip, AdamW step, scheduler step. The reduced (clipped) gradients stay in
        `.grad` until the next train_step zeroes them (tests read them)."""
        if self.world_size > 1 and not self.sharded:  # fsdp2 reduce-scattered the grads in the backward
            from omni_rl.training.dist import all_reduce_grads

            all_reduce_grads(self.params)
        for p in self.params:  # a rank-local step with no micro-batch leaves grads None
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        max_norm = self.grad_clip if self.grad_clip is not None else float("inf")
        from omni_rl.training.fsdp import full_tensor

        grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(self.params, max_norm)))
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return grad_norm

    def compute_logp(self, batch: TrainBatch) -> list[list[float]]:
        """Per-token logp of every sequence's response (same order as batch.sequences), current weights."""
        return [res.logp[i, :len(s.response_ids)].tolist()
                for mb, res in self._score_all(batch) for i, s in enumerate(mb.sequences)]

    @torch.no_grad()
    def _score_all(self, batch: TrainBatch) -> list[tuple[TrainBatch, Any]]:
        """[(micro-batch, its score output)] of a no-grad pass over `batch` at the current weights (under fsdp2 with
        the padding forwards every rank runs)."""
        micro_batches = batch.chunks(self.micro_batch_size)
        for _ in range(self._padding(len(micro_batches))):
            self._forward(self._pad_batch())
        return [(mb, self._forward(mb)[1]) for mb in micro_batches]

    def _forward(self, mb: TrainBatch, loss_fn: Any = None) -> tuple[Any, Any]:
        """(loss_fn(score output) or None, score output) of one micro-batch; under fsdp2 through the FSDP2 root, which
        gathers the non-layer weights for this forward and reduce-scatters their grads after its backward."""

        def run() -> tuple[Any, Any]:
            out = score(self.fwd, mb, encoder_once=self.encoder_once, temperature=self.temperature,
                        prompt_once=self.prompt_once, packing=self.packing)
            return (loss_fn(out) if loss_fn is not None else None), out

        return self.shell(run) if self.shell is not None else run()

    def _padding(self, n_micro: int) -> int:
        """fsdp2: how many padding micro-batches this rank runs so that every rank runs as many forwards as the rank
        with the most micro-batches (FSDP2's gathers are collectives); 0 otherwise."""
        if not self.sharded or self.world_size == 1:
            return 0
        from omni_rl.training.dist import all_reduce_max

        return int(all_reduce_max([float(n_micro)], self.device)[0]) - n_micro

    def _pad_batch(self) -> TrainBatch:
        from omni_rl.training.fsdp import pad_batch

        pad = self.model.config.get_text_config().pad_token_id
        return pad_batch(int(pad) if pad is not None else 0)

    # -------------------------------------------------------------------------------------- weights + checkpoints
    def checkpoint_name(self, name: str) -> str:
        from omni_rl.models.policy import checkpoint_key

        return checkpoint_key(name, self.family)

    def weight_plan(self, max_bytes: int = 256 << 20, *, trainable_only: bool = False
                    ) -> list[list[tuple[str, str, tuple[int, ...], str]]]:
        """How the weights are cut into chunks: [[(state-dict key, checkpoint name, full shape, dtype)]] in state-dict
        order. A block (`weight_block`: a decoder layer, an encoder block, else one module) is never split across
        chunks, so every chunk holds whole vLLM layers (e.g. the q, k and v that vLLM fuses); a chunk closes before it
        would pass `max_bytes` (a bigger block is a chunk of its own). Computed from shapes only (nothing gathered);
        the same on every rank. `trainable_only` skips frozen weights."""
        from omni_rl.training.fsdp import weight_block

        key = (max_bytes, trainable_only)
        cached = getattr(self, "_weight_plans", {})
        if key in cached:
            return cached[key]
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        blocks: list[tuple[str, list[tuple[str, str, tuple[int, ...], str]], int]] = []
        for name, t in self.model.state_dict().items():
            if trainable_only and name not in trainable:
                continue
            entry = (name, self.checkpoint_name(name), tuple(t.shape), str(t.dtype).removeprefix("torch."))
            nbytes = t.numel() * t.element_size()  # a DTensor's numel / shape are the full tensor's
            block = weight_block(name)
            if blocks and blocks[-1][0] == block:
                blocks[-1][1].append(entry)
                blocks[-1] = (block, blocks[-1][1], blocks[-1][2] + nbytes)
            else:
                blocks.append((block, [entry], nbytes))
        plan: list[list[tuple[str, str, tuple[int, ...], str]]] = []
        size = 0
        for _, entries, nbytes in blocks:
            if not plan or (size and size + nbytes > max_bytes):
                plan.append([])
                size = 0
            plan[-1].extend(entries)
            size += nbytes
        self._weight_plans = {**cached, key: plan}
        return plan

    def weight_chunk(self, index: int, max_bytes: int = 256 << 20, *, trainable_only: bool = False
                     ) -> list[tuple[str, Tensor]] | None:
        """Chunk `index` of `weight_plan(max_bytes)` as [(checkpoint_name, tensor)]: detached CPU views of the live
        weights (copy them to keep them across a train_step; through Ray they are serialised, i.e. copied, on
        return). Under fsdp2 every rank must call it (each tensor is all-gathered, one at a time) and only rank 0
        gets the chunk; the others get None."""
        from omni_rl.training.fsdp import full_tensor

        state = self.model.state_dict()
        keep = not self.sharded or self.rank == 0
        out: list[tuple[str, Tensor]] = []
        for key, ckpt, _, _ in self.weight_plan(max_bytes, trainable_only=trainable_only)[index]:
            t = full_tensor(state[key])
            if keep:
                out.append((ckpt, t.detach().to("cpu")))
        return out if keep else None

    def state_dict_chunks(self, max_bytes: int = 256 << 20, *, trainable_only: bool = False
                          ) -> list[list[tuple[str, Tensor]]]:
        """Every chunk of `weight_plan(max_bytes)` (see `weight_chunk`); under fsdp2 every rank must call it and the
        ranks other than 0 get []."""
        n = len(self.weight_plan(max_bytes, trainable_only=trainable_only))
        chunks = [self.weight_chunk(i, max_bytes, trainable_only=trainable_only) for i in range(n)]
        return [c for c in chunks if c is not None]

    def weights(self) -> list[tuple[str, Tensor]]:
        """Every weight (frozen ones included: vLLM gets a full set) as [(checkpoint_name, detached CPU tensor)]."""
        return [kv for chunk in self.state_dict_chunks() for kv in chunk]

    def grad_snapshot(self) -> dict[str, Tensor]:
        """Debug/tests: copies of the trainable parameters' gradients left by the last step (all-reduced, clipped)."""
        from omni_rl.training.fsdp import full_tensor

        return {n: full_tensor(p.grad).detach().clone() for n, p in self.model.named_parameters()
                if p.requires_grad and p.grad is not None}

    def params_snapshot(self) -> dict[str, Tensor]:
        """Debug/tests: copies of every parameter (whole tensors, gathered under fsdp2: every rank must call)."""
        from omni_rl.training.fsdp import full_tensor

        return {n: full_tensor(p).detach().clone() for n, p in self.model.named_parameters()}

    def export_hf(self, out_dir: str | Path) -> Path:
        """An HF checkpoint dir (the source checkpoint's config / tokenizer / processor files + current weights under
        checkpoint names) that transformers and vLLM load like the original. Rank 0 writes; others return."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        if self.rank != 0:
            if self.sharded:
                self.state_dict_chunks()  # the gathers are collectives: every rank takes part
            return out
        out.mkdir(parents=True, exist_ok=True)
        for f in self.model_path.iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name != "model.safetensors.index.json":
                shutil.copy2(f, out / f.name)
        tensors: dict[str, Tensor] = {}
        seen: set[int] = set()
        for chunk in self.state_dict_chunks():
            for name, t in chunk:
                ptr = t.data_ptr()
                tensors[name] = t.contiguous().clone() if ptr in seen else t.contiguous()  # tied weights: own copy
                seen.add(ptr)
        save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
        return out

    def save(self, out_dir: str | Path) -> Path:
        """Checkpoint = `export_hf` + optimizer / scheduler / RNG / step as trainer_state.json + .safetensors
        (`omni_rl.training.state`; rank 0 writes, the ranks are replicas, see omni_rl.training.dist); under fsdp2
        every rank writes its optimizer shard as trainer_state.rank<r>.json + .safetensors."""
        from omni_rl.training.state import save_state

        out = self.export_hf(out_dir)
        if self.sharded:
            import torch.distributed as dist

            dist.barrier()  # rank 0 has created the dir
        if self.sharded or self.rank == 0:
            save_state(self._state(), out / self._state_stem(), strategy=self.strategy, rank=self.rank,
                       world_size=self.world_size)
        return out

    def _state_stem(self, rank: int | None = None) -> str:
        return f"{STATE_STEM}.rank{self.rank if rank is None else rank}" if self.sharded else STATE_STEM

    def _state(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": torch.get_rng_state(), "step": self.step, "objective": self.objective.state_dict()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        return state

    def load(self, ckpt_dir: str | Path) -> None:
        """Restore weights (+ optimizer / scheduler / RNG / step when the dir holds trainer state) from `save`. Checks
        everything it can before changing anything: a trainer state saved by another strategy or number of FSDP2
        ranks, or in the old pickled format (trainer_state*.pt), is refused with what to do."""
        from omni_rl.training.state import load_state

        ckpt = Path(ckpt_dir)
        stem = self._saved_state(ckpt)
        state = load_state(stem)[0] if stem is not None else None  # every file is parsed before anything changes
        full = self._read_weights(ckpt)
        if self.sharded:  # every rank reads the whole tensors and keeps its shards
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(self.model, full, options=StateDictOptions(full_state_dict=True, strict=True))
        else:
            self.model.load_state_dict(full, strict=True)
        if state is None:
            return
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{stem}.json does not fit this trainer: {e}") from None

    def _saved_state(self, ckpt: Path) -> Path | None:
        """This rank's trainer-state stem in `ckpt` (None: a weights-only HF dir), after checking that it was saved
        by this strategy and, under fsdp2, by as many ranks."""
        from omni_rl.training.state import read_meta, state_files

        if not ckpt.is_dir():
            raise FileNotFoundError(f"checkpoint {ckpt} is not a directory")
        pickled = sorted(p.name for p in ckpt.glob(f"{STATE_STEM}*.pt"))
        if pickled:
            raise ValueError(
                f"{ckpt} holds trainer state in the old pickled format ({', '.join(pickled)}); omni-rl does not "
                "unpickle checkpoint files (unpickling can run any code), so it cannot resume from it. Its weights "
                f"(model.safetensors) are safe: start a new run from them with model.path={ckpt} (fresh optimizer "
                "state)")
        sharded = sorted(ckpt.glob(f"{STATE_STEM}.rank*.json"))
        replicated = state_files(ckpt / STATE_STEM)[0].is_file()
        if self.sharded and replicated and not sharded:
            raise FileNotFoundError(f"{ckpt} was saved by the replicated trainer: its optimizer state is not "
                                    "sharded; resume it with trainer.strategy=replicated")
        if not self.sharded and sharded and not replicated:
            raise FileNotFoundError(f"{ckpt} was saved by {len(sharded)} FSDP2 ranks: resume it with "
                                    f"trainer.strategy=fsdp2 trainer.num_workers={len(sharded)}")
        if not (sharded if self.sharded else replicated):
            return None
        stem = ckpt / self._state_stem()
        meta = read_meta(stem if state_files(stem)[0].is_file() else sharded[0].with_suffix(""))
        saved = (meta.get("strategy"), meta.get("world_size"), meta.get("rank"))
        if self.sharded and (len(sharded), saved) != (self.world_size, ("fsdp2", self.world_size, self.rank)):
            raise ValueError(
                f"{ckpt} holds the optimizer shards of {len(sharded)} FSDP2 ranks (world size {meta.get('world_size')})"
                f", this run has {self.world_size}: each shard fits only its rank's part of every parameter. Resume "
                f"with trainer.num_workers={meta.get('world_size')}, or start a new run from its weights with "
                f"model.path={ckpt} (fresh optimizer state)")
        if not self.sharded and saved[0] != "replicated":
            raise ValueError(f"{stem}.json was written by strategy {saved[0]!r}, not 'replicated'")
        return stem

    def _read_weights(self, ckpt: Path) -> dict[str, Tensor]:
        """The checkpoint's model.safetensors as {state-dict key: tensor}; every weight must be there."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        file = ckpt / WEIGHTS_FILE
        if not file.is_file():
            other = sorted(p.name for p in ckpt.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            raise FileNotFoundError(
                f"{ckpt} holds no {WEIGHTS_FILE}" + (f"; {', '.join(other)} would have to be unpickled, which "
                                                     "omni-rl does not do: convert them to safetensors where they "
                                                     "come from" if other else ""))
        try:
            loaded = load_file(str(file))
        except SafetensorError as e:
            raise ValueError(f"{file} is not a safetensors file ({e})") from None
        by_ckpt_name = {self.checkpoint_name(n): n for n in self.model.state_dict()}
        missing = set(by_ckpt_name) - set(loaded)
        if missing:
            raise KeyError(f"{file} lacks {len(missing)} weights, e.g. {sorted(missing)[:3]}")
        return {by_ckpt_name[k]: v for k, v in loaded.items() if k in by_ckpt_name}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Optimizer (sharded moments rebuilt around this rank's parameters), scheduler, RNG, step, objective."""
        from omni_rl.training.state import as_shard_of, check_rng_state

        optimizer = state["optimizer"]
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        names = {id(p): n for n, p in self.model.named_parameters()}
        for index, entry in optimizer["state"].items():
            if not 0 <= index < len(params):
                raise IndexError(f"optimizer state for parameter {index}, the optimizer has {len(params)}")
            param = params[index]
            optimizer["state"][index] = {k: as_shard_of(v, param, names[id(param)]) for k, v in entry.items()}
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(check_rng_state(state["rng"], "rng"))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(check_rng_state(state["cuda_rng"], "cuda_rng"))
        self.step = int(state["step"])
        self.objective.load_state_dict(state["objective"])

    def shutdown(self) -> None:
        if self.world_size > 1 or self.sharded:
            import torch.distributed as dist

            if dist.is_initialized():
                # Every rank calls shutdown. Without the barrier, rank 0 (which hosts the rendezvous store) can tear
                # the group down while another rank is still in its last collective; gloo then aborts that rank
                # ("terminate called without an active exception", seen once in CI).
                dist.barrier()
                dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------------ helpers
def _node_id() -> str:
    from omni_rl.distributed.ray_utils import node_id

    return node_id()


def lr_factor(warmup_steps: int, schedule: str = "constant", *, total_steps: int | None = None,
              min_ratio: float = 0.0):
    """lr multiplier for optimizer step s (0-based): (s + 1) / warmup_steps during warmup; then 1 ("constant"), or
    a cosine from 1 down to `min_ratio` at step `total_steps` (and `min_ratio` after it) ("cosine")."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if schedule == "cosine" and (total_steps is None or total_steps <= warmup_steps):
        raise ValueError(f"lr_schedule 'cosine' needs total_steps > warmup_steps, got {total_steps}")

    def factor(s: int) -> float:
        if warmup_steps > 0 and s < warmup_steps:
            return (s + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup_steps) / (total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def reduce_metrics(per_rank: Sequence[dict[str, float]], objective: Objective | None = None) -> dict[str, float]:
    """Combine the ranks' `train_step` sums into the step's metrics (names under `train/`, the mismatch's, the
    objective's, and its state metrics as rank 0 reports them); `objective` None: the default algorithm's."""
    obj = objective if objective is not None else default_objective()
    tot = {k: sum(m[k] for m in per_rank) for k in COMMON_SUM_KEYS + obj.sum_keys}
    first = per_rank[0]
    return {
        "train/loss": tot["loss"],
        "train/num_seqs": tot["num_seqs"],
        "train/num_weighted_seqs": tot["num_weighted"],
        "train/tokens": tot["tokens"],
        "train/encoder_media_items": tot["media_encoded"],
        "encoder/forwards": tot["encoder_forwards"],
        **reduce_mismatch(tot, per_rank),
        **obj.reduce(tot, per_rank),
        **{k: first[k] for k in obj.metrics()},
        "train/grad_norm": first["grad_norm"],
        "train/lr": first["lr"],
        "train/optimizer_step": first["step"],
        "train/forward_backward_s": max(m["forward_s"] for m in per_rank),
    }


# Counts and times add up over the optimizer steps of one `train` call; everything else is averaged.
_STEP_SUM_KEYS = ("train/num_seqs", "train/num_weighted_seqs", "train/tokens", "train/encoder_media_items",
                  "encoder/forwards", "train/logprob_masked_seqs", "train/forward_backward_s")
# The short names the controller / logger use (left) for the long ones (right).
SHORT_NAMES = {"loss/clip_frac": "train/clip_frac", "loss/clip_frac_low": "train/clip_frac_low",
               "loss/clip_frac_high": "train/clip_frac_high", "loss/ratio_mean": "train/ratio_mean",
               "logprob/mismatch_mean": "train/logprob_abs_diff_mean", "train/masked_seqs": "train/logprob_masked_seqs"}


def _combine_steps(steps: Sequence[dict[str, float]], objective: Objective) -> dict[str, float]:
    """Metrics of one `train` call from its optimizer steps' metrics (means; counts and times summed; maxima; the
    objective's state metrics after the last step)."""
    if not steps:
        return {"train/optimizer_steps": 0.0}
    out = {k: sum(m[k] for m in steps) / len(steps) for k in steps[0]}
    for k in _STEP_SUM_KEYS:
        if k in steps[0]:
            out[k] = sum(m[k] for m in steps)
    for key in ("logprob/mismatch_max", "train/logprob_seq_error_max"):
        if key in steps[0]:
            out[key] = max(m[key] for m in steps)
    for key in objective.metrics():
        out[key] = steps[-1][key]  # the state after the last step, not a mean
    out["train/optimizer_steps"] = float(len(steps))
    return out


def _accumulate(sums: dict[str, float], maxes: dict[str, float], values: dict[str, float]) -> None:
    """Add `values` into `sums`, or take the max into `maxes` for the COMMON max keys (the log-prob mismatch's)."""
    for key, value in values.items():
        if key in COMMON_MAX_KEYS:
            maxes[key] = max(maxes.get(key, 0.0), value)
        else:
            sums[key] = sums.get(key, 0.0) + value


def with_short_names(metrics: dict[str, float]) -> dict[str, float]:
    """Add the short metric names (SHORT_NAMES) next to the long ones."""
    return {**metrics, **{short: metrics[long] for short, long in SHORT_NAMES.items() if long in metrics}}
