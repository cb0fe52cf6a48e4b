"""Trainer worker: one data-parallel rank holding the HF policy, its optimizer and scheduler.

A plain class (tests drive it in-process, also as real 2-process gloo groups); `omni_rl.training.group.TrainerGroup`
hosts one per rank as a Ray actor. The narrow interface a second backend (Megatron-Core) would implement:

    train(batch, *, num_minibatches) -> metrics              k optimizer steps on this rank's shard (all-reduced)
    train_step(batch, *, global_num_seqs) -> metric sums     one optimizer step on this rank's shard (primitive)
    compute_logp(batch) -> [[float]]                          per-token logp of every response (no grad)
    weights() -> [(checkpoint_name, tensor)]                  every weight (frozen included), for the vLLM refit
    state_dict_chunks(max_bytes) -> [[(checkpoint_name, tensor)]]   for the vLLM refit and for checkpoints
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

Optional KL to the initial policy (`kl_beta` != 0; the recipe uses 0): a frozen reference copy is loaded and
kl_beta * k3-KL (masked token mean, `omni_rl.algorithms.gspo.kl_k3`) is added to each sequence's loss.
The model is kept in eval mode (no dropout) for both scoring and training.
"""

from __future__ import annotations

import math

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omni_rl.algorithms.gspo import gspo_loss, kl_k3, logprob_error_weights
from omni_rl.algorithms.normalization import normalized_sum
from omni_rl.config.schema import LR_SCHEDULES
from omni_rl.training.batch import TrainBatch
from omni_rl.training.forward import make_adapter, score

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
# Metric sums a rank returns; the group adds them over ranks (see `reduce_metrics`).
SUM_KEYS = ("loss", "num_seqs", "num_weighted", "num_valid", "clip_low", "clip_high", "ratio_sum", "log_ratio_abs_sum",
            "tokens", "media_encoded", "encoder_forwards", "logprob_abs_diff_sum", "logprob_tokens", "logprob_masked",
            "kl_sum")
MAX_KEYS = ("logprob_seq_error_max", "logprob_token_max", "forward_s")


class TrainerWorker:
    def __init__(self, model_path: str, *, family: str | None = None, dtype: str = "float32", device: str = "cpu",
                 rank: int = 0, world_size: int = 1, master_addr: str | None = None, master_port: int | None = None,
                 freeze: Mapping[str, bool] | None = None, lr: float = 1e-5, warmup_steps: int = 0,
                 lr_schedule: str = "constant", total_steps: int | None = None, min_lr_ratio: float = 0.0,
                 weight_decay: float = 0.0, betas: Sequence[float] = (0.9, 0.999), grad_clip: float | None = 1.0,
                 micro_batch_size: int = 16, encoder_once: bool = True, eps_low: float = 0.2, eps_high: float = 0.28,
                 max_logprob_error: float | None = None, kl_beta: float = 0.0, temperature: float = 1.0,
                 seed: int = 0, num_threads: int | None = None):
        from omni_rl.models.policy import detect_family, load_model

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        torch.manual_seed(seed + rank)
        self.model_path = Path(model_path)
        self.family = family or detect_family(model_path)
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.micro_batch_size = micro_batch_size
        self.encoder_once = encoder_once
        self.eps_low, self.eps_high = eps_low, eps_high
        self.max_logprob_error = max_logprob_error
        self.temperature = temperature
        self.grad_clip = grad_clip
        self.step = 0
        if world_size > 1:
            from omni_rl.training.dist import default_backend, init_process_group

            if master_addr is None or master_port is None:
                raise ValueError("world_size > 1 needs master_addr and master_port")
            init_process_group(rank=rank, world_size=world_size, master_addr=master_addr, master_port=master_port,
                               backend=default_backend(self.device))
        self.model = load_model(model_path, dtype, family=self.family).to(self.device).eval()
        self.adapter = make_adapter(self.model, self.family)
        self.frozen = self._freeze(freeze or {})
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"every parameter is frozen (freeze={dict(freeze or {})})")
        self.kl_beta = kl_beta
        self.ref_adapter = self._reference(model_path, dtype) if kl_beta != 0 else None
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
        """A frozen copy of the initial policy for the optional KL term (the recipe trains with KL 0)."""
        from omni_rl.models.policy import load_model

        ref = load_model(model_path, dtype, family=self.family).to(self.device).eval().requires_grad_(False)
        return make_adapter(ref, self.family)

    def info(self) -> dict[str, Any]:
        n_train = sum(p.numel() for p in self.params)
        n_all = sum(p.numel() for p in self.model.parameters())
        return {"rank": self.rank, "world_size": self.world_size, "family": self.family, "step": self.step,
                "trainable_params": n_train, "total_params": n_all, "frozen_tensors": self.frozen,
                "device": str(self.device)}

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
        pre: dict[str, float] = {}
        needs_old = k > 1 and any(s.old_logp is None for s in batch.sequences)
        prepass = needs_old or self.max_logprob_error is not None
        if prepass:
            batch, pre = self._prepare(batch, fill_old_logp=needs_old)
        pieces = batch.split(k)
        counts = [p.num_weighted for p in pieces] + [float(p.num_sequences) for p in pieces]
        counts += [float(sum(s.weight for s in batch.sequences)), pre.get("unmasked_weight", 0.0)]
        if self.world_size > 1:
            from omni_rl.training.dist import all_reduce_sum

            counts = all_reduce_sum(counts, self.device)
        if global_num_seqs is not None:
            before_mask = counts[2 * k] + (counts[2 * k + 1] if prepass else 0.0)
            if abs(before_mask - global_num_seqs) > 1e-6 * max(1.0, global_num_seqs):
                raise ValueError(f"global_num_seqs={global_num_seqs} but the ranks' shards weigh {before_mask}")
        steps = []
        for j, piece in enumerate(pieces):
            if counts[k + j] == 0:  # no rank has a sequence for this mini-batch: no optimizer step
                continue
            sums = self.train_step(piece, global_num_seqs=counts[j], logprob_mask=not prepass)
            steps.append(reduce_metrics(self._all_reduce_metrics(sums)))
        out = _combine_steps(steps)
        if prepass and any(s.rollout_logp is not None for s in batch.sequences):
            stats = [pre.get(key, 0.0) for key in ("abs_diff_sum", "tokens", "masked")]
            maxes = [pre.get("token_max", 0.0), pre.get("seq_error_max", 0.0)]
            if self.world_size > 1:
                from omni_rl.training.dist import all_reduce_max, all_reduce_sum

                stats, maxes = all_reduce_sum(stats, self.device), all_reduce_max(maxes, self.device)
            out["train/logprob_abs_diff_mean"] = stats[0] / max(stats[1], 1.0)
            out["train/logprob_masked_seqs"] = stats[2]
            out["train/logprob_seq_error_max"] = maxes[1]
            out["logprob/mismatch_max"] = maxes[0]
        out["train/time_s"] = time.perf_counter() - t0
        return with_short_names(out)

    def _prepare(self, batch: TrainBatch, *, fill_old_logp: bool) -> tuple[TrainBatch, dict[str, float]]:
        """One no-grad pass before any update: old_logp (when asked), mismatch vs the rollout logp, and the
        `max_logprob_error` mask folded into the weights. Returns (new batch sharing the prompts, stat sums)."""
        from dataclasses import replace

        logp = self.compute_logp(batch)
        stats = dict(abs_diff_sum=0.0, tokens=0.0, masked=0.0, token_max=0.0, seq_error_max=0.0, unmasked_weight=0.0)
        seqs = []
        for s, row in zip(batch.sequences, logp):
            changes: dict[str, Any] = {}
            if fill_old_logp and s.old_logp is None:
                changes["old_logp"] = row
            if s.rollout_logp is not None and row:
                diff = [abs(a - b) for a, b in zip(row, s.rollout_logp)]
                error = sum(diff) / len(diff)
                stats["abs_diff_sum"] += sum(diff)
                stats["tokens"] += len(diff)
                stats["token_max"] = max(stats["token_max"], max(diff))
                stats["seq_error_max"] = max(stats["seq_error_max"], error)
                if self.max_logprob_error is not None and error > self.max_logprob_error and s.weight > 0:
                    stats["masked"] += 1
                    stats["unmasked_weight"] += s.weight  # weight removed by the mask (for the count check)
                    changes["weight"] = 0.0
            seqs.append(replace(s, **changes) if changes else s)
        return TrainBatch(prompts=batch.prompts, sequences=seqs), stats

    def _all_reduce_metrics(self, sums: dict[str, float]) -> list[dict[str, float]]:
        """This rank's train_step sums -> [the SUM over ranks] (max keys: MAX), as `reduce_metrics` input."""
        if self.world_size == 1:
            return [sums]
        from omni_rl.training.dist import all_reduce_max, all_reduce_sum

        out = dict(sums)
        out.update(zip(SUM_KEYS, all_reduce_sum([sums[k] for k in SUM_KEYS], self.device)))
        out.update(zip(MAX_KEYS, all_reduce_max([sums[k] for k in MAX_KEYS], self.device)))
        return [out]

    def train_step(self, batch: TrainBatch, *, global_num_seqs: float, logprob_mask: bool = True) -> dict[str, float]:
        """One optimizer step on this rank's shard; returns metric sums (see SUM_KEYS) + grad_norm and lr.
        `logprob_mask=False`: the caller already folded the `max_logprob_error` mask into the weights (and measured
        the mismatch before any update); this step neither masks nor measures."""
        sums = dict.fromkeys(SUM_KEYS, 0.0)
        seq_error_max = token_max = forward_s = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for mb in batch.chunks(self.micro_batch_size):
            t0 = time.perf_counter()
            out = score(self.adapter, mb, encoder_once=self.encoder_once, temperature=self.temperature)
            logp, mask = out.logp, out.mask  # [B, R]
            old_logp = _old_logp(mb, logp)  # [B, R]
            weights = torch.tensor([s.weight for s in mb.sequences], dtype=logp.dtype, device=logp.device)  # [B]
            rollout = _padded([s.rollout_logp for s in mb.sequences], logp) if logprob_mask else None
            if rollout is not None:
                limit = self.max_logprob_error if self.max_logprob_error is not None else float("inf")
                keep, error = logprob_error_weights(logp.detach(), rollout, mask, limit)
                if self.max_logprob_error is not None:
                    sums["logprob_masked"] += float(((keep == 0) & (weights > 0)).sum())
                    weights = weights * keep
                sums["logprob_abs_diff_sum"] += float(((logp.detach() - rollout).abs() * mask).sum())
                sums["logprob_tokens"] += float(mask.sum())
                seq_error_max = max(seq_error_max, float(error.max()))
                token_max = max(token_max, float(((logp.detach() - rollout).abs() * mask).max()))
            advantages = torch.tensor([s.advantage for s in mb.sequences], dtype=logp.dtype, device=logp.device)
            per_seq, m = gspo_loss(logp, old_logp, advantages, mask, eps_low=self.eps_low, eps_high=self.eps_high)
            if self.ref_adapter is not None:
                with torch.no_grad():
                    ref_logp = score(self.ref_adapter, mb, encoder_once=self.encoder_once,
                                     temperature=self.temperature).logp
                kl = kl_k3(logp, ref_logp, mask)  # [B]
                per_seq = per_seq + self.kl_beta * kl
                sums["kl_sum"] += float((kl.detach() * weights).sum())
            loss = normalized_sum(per_seq, weights, global_num_seqs)
            loss.backward()
            n_valid = float((mask.sum(-1) > 0).sum())
            sums["loss"] += float(loss.detach())
            sums["num_seqs"] += mb.num_sequences
            sums["num_weighted"] += float(weights.sum())
            sums["num_valid"] += n_valid
            sums["clip_low"] += float(m["clip_frac_low"]) * n_valid
            sums["clip_high"] += float(m["clip_frac_high"]) * n_valid
            sums["ratio_sum"] += float(m["ratio_mean"]) * n_valid
            sums["log_ratio_abs_sum"] += float(m["log_ratio_abs_mean"]) * n_valid
            sums["tokens"] += float(mask.sum())
            sums["media_encoded"] += out.media_encoded
            sums["encoder_forwards"] += out.encoder_forwards
            forward_s += time.perf_counter() - t0
        lr = self.optimizer.param_groups[0]["lr"]
        grad_norm = self._optimizer_step()
        return {**sums, "logprob_seq_error_max": seq_error_max, "logprob_token_max": token_max,
                "forward_s": forward_s, "grad_norm": grad_norm, "lr": lr, "step": float(self.step)}

    def _optimizer_step(self) -> float:
        """All-reduce (SUM) the grads, clip, AdamW step, scheduler step. The reduced (clipped) gradients stay in
        `.grad` until the next train_step zeroes them (tests read them)."""
        if self.world_size > 1:
            from omni_rl.training.dist import all_reduce_grads

            all_reduce_grads(self.params)
        for p in self.params:  # a rank-local step with no micro-batch leaves grads None
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        max_norm = self.grad_clip if self.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return grad_norm

    @torch.no_grad()
    def compute_logp(self, batch: TrainBatch) -> list[list[float]]:
        """Per-token logp of every sequence's response (same order as batch.sequences), current weights."""
        out: list[list[float]] = []
        for mb in batch.chunks(self.micro_batch_size):
            res = score(self.adapter, mb, encoder_once=self.encoder_once, temperature=self.temperature)
            for i, s in enumerate(mb.sequences):
                out.append(res.logp[i, :len(s.response_ids)].tolist())
        return out

    # -------------------------------------------------------------------------------------- weights + checkpoints
    def checkpoint_name(self, name: str) -> str:
        from omni_rl.models.policy import checkpoint_key

        return checkpoint_key(name, self.family)

    def state_dict_chunks(self, max_bytes: int = 256 << 20, *, trainable_only: bool = False
                          ) -> list[list[tuple[str, Tensor]]]:
        """The weights as [(checkpoint_name, tensor)] chunks of at most `max_bytes` each (a bigger single tensor is a
        chunk of its own). Tensors are detached CPU views of the live weights: copy them if you keep them across a
        train_step (through Ray they are serialised, i.e. copied, on return). `trainable_only` skips frozen weights
        (a refit only needs what changed)."""
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        chunks: list[list[tuple[str, Tensor]]] = []
        chunk: list[tuple[str, Tensor]] = []
        size = 0
        for name, t in self.model.state_dict().items():
            if trainable_only and name not in trainable:
                continue
            nbytes = t.numel() * t.element_size()
            if chunk and size + nbytes > max_bytes:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append((self.checkpoint_name(name), t.detach().to("cpu")))
            size += nbytes
        if chunk:
            chunks.append(chunk)
        return chunks

    def weights(self) -> list[tuple[str, Tensor]]:
        """Every weight (frozen ones included: vLLM gets a full set) as [(checkpoint_name, detached CPU tensor)]."""
        return [kv for chunk in self.state_dict_chunks() for kv in chunk]

    def grad_snapshot(self) -> dict[str, Tensor]:
        """Debug/tests: copies of the trainable parameters' gradients left by the last step (all-reduced, clipped)."""
        return {n: p.grad.detach().clone() for n, p in self.model.named_parameters()
                if p.requires_grad and p.grad is not None}

    def export_hf(self, out_dir: str | Path) -> Path:
        """An HF checkpoint dir (the source checkpoint's config / tokenizer / processor files + current weights under
        checkpoint names) that transformers and vLLM load like the original. Rank 0 writes; others return."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        if self.rank != 0:
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
        """Checkpoint = `export_hf` + optimizer / scheduler / RNG / step in trainer_state.pt (rank 0 writes; the
        ranks are replicas, see omni_rl.training.dist)."""
        out = self.export_hf(out_dir)
        if self.rank == 0:
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "rng": torch.get_rng_state(), "step": self.step,
                     "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None}
            torch.save(state, out / STATE_FILE)
        return out

    def load(self, ckpt_dir: str | Path) -> None:
        """Restore weights (+ optimizer / scheduler / RNG / step when trainer_state.pt exists) from `save`."""
        from safetensors.torch import load_file

        ckpt = Path(ckpt_dir)
        by_ckpt_name = {self.checkpoint_name(n): n for n in self.model.state_dict()}
        loaded = load_file(str(ckpt / WEIGHTS_FILE))
        missing = set(by_ckpt_name) - set(loaded)
        if missing:
            raise KeyError(f"{ckpt / WEIGHTS_FILE} lacks {len(missing)} weights, e.g. {sorted(missing)[:3]}")
        self.model.load_state_dict({by_ckpt_name[k]: v for k, v in loaded.items() if k in by_ckpt_name}, strict=True)
        if (ckpt / STATE_FILE).is_file():
            state = torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if state.get("cuda_rng") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"])
            self.step = int(state["step"])

    def shutdown(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                # Every rank calls shutdown. Without the barrier, rank 0 (which hosts the rendezvous store) can tear
                # the group down while another rank is still in its last collective; gloo then aborts that rank
                # ("terminate called without an active exception", seen once in CI).
                dist.barrier()
                dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------------ helpers
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


def _padded(rows: Sequence[Sequence[float] | None], like: Tensor) -> Tensor | None:
    """[B, R] tensor like `like` from per-sequence lists (zeros past each list); None if any row is None."""
    if any(r is None for r in rows):
        return None
    out = torch.zeros_like(like)
    for i, r in enumerate(rows):
        if len(r) > like.shape[1]:
            raise ValueError(f"sequence {i}: {len(r)} logprobs for {like.shape[1]} response tokens")
        out[i, :len(r)] = torch.tensor(list(r), dtype=like.dtype)
    return out


def _old_logp(mb: TrainBatch, logp: Tensor) -> Tensor:
    """The behaviour logp [B, R]: each sequence's `old_logp`, or this forward's detached logp (on-policy)."""
    out = logp.detach().clone()
    for i, s in enumerate(mb.sequences):
        if s.old_logp is not None:
            if len(s.old_logp) != len(s.response_ids):
                raise ValueError(f"old_logp has {len(s.old_logp)} entries for {len(s.response_ids)} tokens")
            out[i, :len(s.old_logp)] = torch.tensor(s.old_logp, dtype=logp.dtype)
    return out


def reduce_metrics(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """Combine the ranks' `train_step` sums into the step's metrics (names under `train/`)."""
    tot = {k: sum(m[k] for m in per_rank) for k in SUM_KEYS}
    n_valid = max(tot["num_valid"], 1.0)
    first = per_rank[0]
    return {
        "train/loss": tot["loss"],
        "train/num_seqs": tot["num_seqs"],
        "train/num_weighted_seqs": tot["num_weighted"],
        "train/tokens": tot["tokens"],
        "train/clip_frac_low": tot["clip_low"] / n_valid,
        "train/clip_frac_high": tot["clip_high"] / n_valid,
        "train/clip_frac": (tot["clip_low"] + tot["clip_high"]) / n_valid,
        "train/ratio_mean": tot["ratio_sum"] / n_valid,
        "train/log_ratio_abs_mean": tot["log_ratio_abs_sum"] / n_valid,
        "train/encoder_media_items": tot["media_encoded"],
        "encoder/forwards": tot["encoder_forwards"],
        "train/logprob_abs_diff_mean": tot["logprob_abs_diff_sum"] / max(tot["logprob_tokens"], 1.0),
        "train/logprob_seq_error_max": max(m["logprob_seq_error_max"] for m in per_rank),
        "logprob/mismatch_max": max(m["logprob_token_max"] for m in per_rank),
        "train/logprob_masked_seqs": tot["logprob_masked"],
        "train/kl_ref": tot["kl_sum"] / max(tot["num_weighted"], 1.0),
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


def _combine_steps(steps: Sequence[dict[str, float]]) -> dict[str, float]:
    """Metrics of one `train` call from its optimizer steps' metrics (means; counts and times summed)."""
    if not steps:
        return {"train/optimizer_steps": 0.0}
    out = {k: sum(m[k] for m in steps) / len(steps) for k in steps[0]}
    for k in _STEP_SUM_KEYS:
        out[k] = sum(m[k] for m in steps)
    out["logprob/mismatch_max"] = max(m["logprob/mismatch_max"] for m in steps)
    out["train/logprob_seq_error_max"] = max(m["train/logprob_seq_error_max"] for m in steps)
    out["train/optimizer_steps"] = float(len(steps))
    return out


def with_short_names(metrics: dict[str, float]) -> dict[str, float]:
    """Add the short metric names (SHORT_NAMES) next to the long ones."""
    return {**metrics, **{short: metrics[long] for short, long in SHORT_NAMES.items() if long in metrics}}
