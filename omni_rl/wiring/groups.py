"""The rollout and trainer groups of a stage (or the rollout group of an offline job), built from the config:
which group argument each config field becomes, the objective, the GPUs per rank, and where the workers landed."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from omni_rl.config.schema import OmniRLConfig
from omni_rl.distributed import ray_utils
from omni_rl.distributed.ray_utils import cluster_gpus
from omni_rl.rollout.group import RolloutGroup
from omni_rl.training import objectives
from omni_rl.wiring.policy import Policy
from omni_rl.wiring.run import Run
from omni_rl.wiring.startup import StartupClock

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily
    from omni_rl.training.group import TrainerGroup
    from omni_rl.training.objectives.base import Objective


def init_ray(cfg: OmniRLConfig) -> None:
    ray_utils.init_ray(num_cpus=cfg.num_cpus, address=cfg.ray_address)


def build_rollout_group(cfg: OmniRLConfig, policy: Policy) -> RolloutGroup:
    r = cfg.rollout
    worker_kwargs = dict(seed=cfg.run.seed, dtype=cfg.model.dtype, max_model_len=r.max_model_len,
                         kv_cache_gib=r.kv_cache_gib, gpu_memory_utilization=r.gpu_memory_utilization,
                         tensor_parallel_size=r.tensor_parallel_size, enforce_eager=r.enforce_eager,
                         limit_mm_per_prompt=mm_limits(policy.family), trust_remote_code=cfg.model.trust_remote_code,
                         family=policy.family)
    sampling = dict(temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens, stop=list(r.stop))
    return RolloutGroup(str(policy.path), num_workers=r.num_workers, worker_kwargs=worker_kwargs, sampling=sampling,
                        banned_token_ids=policy.banned_token_ids, timeout_s=r.timeout_s,
                        refit_timeout_s=r.refit_timeout_s, max_retries=r.max_retries,
                        num_gpus_per_worker=r.num_gpus_per_worker, resources=dict(r.resources),
                        placement_strategy=r.placement_strategy)


def mm_limits(family: ModelFamily) -> dict[str, int] | None:
    """vLLM's `limit_mm_per_prompt` for the family's checkpoints (None: text only)."""
    limits = family.mm_limits
    return dict(limits) if limits is not None else None


def trainer_gpus(cfg: OmniRLConfig) -> float:
    """GPUs per trainer rank: `trainer.num_gpus_per_worker`, or 1 when the Ray cluster has GPUs, else 0."""
    if cfg.trainer.num_gpus_per_worker is not None:
        return float(cfg.trainer.num_gpus_per_worker)
    return 1.0 if cluster_gpus() > 0 else 0.0


def build_workers(cfg: OmniRLConfig, policy: Policy, *, rollout: bool = True, clock: StartupClock | None = None
                  ) -> tuple["TrainerGroup", RolloutGroup | None]:
    """The trainer group and (when `rollout`) the rollout group, started at the same time: the vLLM workers import
    vLLM and start their engines while the trainer ranks import transformers and load the model (these start-ups
    are most of a run's fixed seconds, and each runs in its own process). If one fails, the other is shut down.
    `clock` gets `workers/trainer` and `workers/rollout`: how long each group took to be ready (they overlap)."""
    t0 = time.perf_counter()

    def timed(name: str, build: Any) -> Any:
        group = build(cfg, policy)
        if clock is not None:
            clock.parts[f"workers/{name}"] = time.perf_counter() - t0
        return group

    if not rollout:
        return timed("trainer", build_trainer_group), None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-start") as pool:
        pending = pool.submit(timed, "rollout", build_rollout_group)  # Ray calls are thread-safe; this thread waits
        try:
            trainer = timed("trainer", build_trainer_group)
        except BaseException:
            try:
                pending.result().shutdown()
            except Exception:  # noqa: BLE001  (the trainer's error is the one to report)
                pass
            raise
        try:
            return trainer, pending.result()
        except BaseException:
            trainer.shutdown()
            raise


def record_placement(run: Run, trainer: "TrainerGroup", rollout: RolloutGroup | None) -> dict[str, list[str]]:
    """Write `placement.json` in the run dir: the Ray node of every rollout worker and trainer rank (in order)."""
    placement = {"rollout": list(rollout.node_ids) if rollout is not None else [],
                 "trainer": list(trainer.node_ids)}
    (run.dir / "placement.json").write_text(json.dumps(placement, indent=2))
    nodes = sorted(set(placement["rollout"]) | set(placement["trainer"]))
    if len(nodes) > 1:
        run.console.print(f"placement over {len(nodes)} Ray nodes: rollout on "
                          f"{sorted({nodes.index(n) for n in placement['rollout']})}, trainer on "
                          f"{sorted({nodes.index(n) for n in placement['trainer']})} (placement.json)")
    return placement


def trainer_mixed_precision(cfg: OmniRLConfig) -> str | None:
    """`trainer.mixed_precision`, defaulting to bfloat16 compute (fp32 master weights) for FSDP2 ranks on GPUs."""
    t = cfg.trainer
    if t.mixed_precision is not None:
        return t.mixed_precision
    return "bfloat16" if t.strategy == "fsdp2" and trainer_gpus(cfg) > 0 else None


def build_objective(cfg: OmniRLConfig) -> "Objective":
    """The training objective `algorithm.name` selects (`omni_rl.training.objectives`), built from `algorithm.*`;
    ValueError (listing the registered names) for an unknown name or one that does not train `run.kind`."""
    return objectives.build_objective(cfg.algorithm, run_kind=cfg.run.kind)


def build_trainer_group(cfg: OmniRLConfig, policy: Policy) -> "TrainerGroup":
    from omni_rl.training.group import TrainerGroup  # imports torch: only when a trainer is built

    t = cfg.trainer
    return TrainerGroup(str(policy.path), num_workers=t.num_workers, num_gpus_per_worker=trainer_gpus(cfg),
                        family=policy.family,
                        trust_remote_code=cfg.model.trust_remote_code, strategy=t.strategy,
                        resources=dict(t.resources), refit_chunk_bytes=int(t.refit_chunk_mib * 2**20),
                        activation_checkpointing=t.activation_checkpointing, packing=t.packing,
                        mixed_precision=trainer_mixed_precision(cfg),
                        lr=t.lr, warmup_steps=t.warmup_steps,
                        lr_schedule=t.lr_schedule, min_lr_ratio=t.min_lr_ratio,
                        total_steps=cfg.run.steps * t.optimizer_steps_per_batch,
                        weight_decay=t.weight_decay, betas=tuple(t.betas), grad_clip=t.grad_clip,
                        micro_batch_size=t.micro_batch_size, encoder_once=t.encoder_once,
                        prompt_once=t.prompt_once,
                        freeze=asdict(t.freeze), objective=build_objective(cfg),
                        max_logprob_error=cfg.algorithm.max_logprob_error, seed=cfg.run.seed, dtype=cfg.model.dtype)
