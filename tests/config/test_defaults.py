"""Each default has one home: the schema (omni_rl.config.schema) or, for clip ranges, omni_rl.algorithms.clip. The
function and class defaults that restate one must be the same value, so changing the home changes them all."""

import inspect

from omni_rl.algorithms import clip
from omni_rl.algorithms.gspo import CLIP_PRESETS
from omni_rl.config.schema import (ADAM_BETAS, AlgorithmConfig, GRPOConfig, ModelConfig, MPOConfig, RolloutConfig,
                                   RunConfig, TrainerConfig)
from omni_rl.rollout.group import RolloutGroup
from omni_rl.rollout.worker import RolloutWorker
from omni_rl.training.objectives.grpo import GRPOObjective
from omni_rl.training.objectives.gspo import GSPOObjective
from omni_rl.training.objectives.mpo import MPOObjective
from omni_rl.training.objectives.registry import default_objective
from omni_rl.training.worker import TrainerWorker


def test_clip_defaults_come_from_one_home():
    assert CLIP_PRESETS is clip.CLIP_PRESETS  # gspo re-exports the one dict
    assert AlgorithmConfig.clip_preset == clip.GSPO_DEFAULT_PRESET == "recipe"
    assert (AlgorithmConfig.eps_low, AlgorithmConfig.eps_high) == clip.CLIP_PRESETS["recipe"] == (0.2, 0.28)
    assert (GRPOConfig.eps_low, GRPOConfig.eps_high) == clip.DAPO_CLIP == (0.2, 0.28)
    assert clip.CLIP_PRESETS["paper"] == (3e-4, 4e-4)


def test_objective_defaults_are_the_default_configs():
    default = AlgorithmConfig()
    assert GSPOObjective() == GSPOObjective.from_config(default) == default_objective()
    assert GRPOObjective() == GRPOObjective.from_config(default)
    assert (GSPOObjective().kl_beta, GRPOObjective().kl_beta) == (AlgorithmConfig.kl_beta, AlgorithmConfig.kl_beta)
    assert MPOObjective.from_config(default).delta_momentum == MPOObjective(0.1, 0.8, 0.2, 0.0).delta_momentum \
        == MPOConfig.delta_momentum


def test_trainer_worker_defaults_are_the_schemas():
    params = inspect.signature(TrainerWorker).parameters
    # the worker's keyword -> the schema default it restates
    homes = {
        "dtype": ModelConfig.dtype, "lr": TrainerConfig.lr, "lr_schedule": TrainerConfig.lr_schedule,
        "min_lr_ratio": TrainerConfig.min_lr_ratio, "weight_decay": TrainerConfig.weight_decay,
        "grad_clip": TrainerConfig.grad_clip, "micro_batch_size": TrainerConfig.micro_batch_size,
        "encoder_once": TrainerConfig.encoder_once, "strategy": TrainerConfig.strategy,
        "activation_checkpointing": TrainerConfig.activation_checkpointing,
        "mixed_precision": TrainerConfig.mixed_precision, "prompt_once": TrainerConfig.prompt_once,
        "packing": TrainerConfig.packing, "max_logprob_error": AlgorithmConfig.max_logprob_error,
        "seed": RunConfig.seed,
        "trust_remote_code": ModelConfig.trust_remote_code,
    }
    for name, value in homes.items():
        assert params[name].default is value, (name, params[name].default, value)
    # not rollout.temperature: the rollout worker records vLLM's pre-temperature logprobs, so the trainer scores at 1
    assert params["temperature"].default == 1.0
    assert params["betas"].default is ADAM_BETAS and list(ADAM_BETAS) == TrainerConfig().betas == [0.9, 0.999]


def test_trainer_worker_has_no_warmup_default():
    """The schema's trainer.warmup_steps is 2; the worker used to default to 0. Now every caller states it."""
    assert inspect.signature(TrainerWorker).parameters["warmup_steps"].default is inspect.Parameter.empty
    assert TrainerConfig.warmup_steps == 2


def test_verifier_defaults_come_from_the_verifier_layer():
    from omni_rl.config.schema import VerifyConfig
    from omni_rl.verifiers.combine import DEFAULT_FORMAT_WEIGHT, reward
    from omni_rl.verifiers.pool import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS, VerifierPool, score_batch

    assert (VerifyConfig.format_weight, VerifyConfig.num_workers, VerifyConfig.timeout_s) == (0.1, 2, 3.0)
    assert VerifyConfig.format_weight is DEFAULT_FORMAT_WEIGHT
    assert VerifyConfig.num_workers is DEFAULT_WORKERS and VerifyConfig.timeout_s is DEFAULT_TIMEOUT_S
    for fn in (VerifierPool, score_batch):
        params = inspect.signature(fn).parameters
        assert params["num_workers"].default is DEFAULT_WORKERS and params["timeout_s"].default is DEFAULT_TIMEOUT_S
        assert params["format_weight"].default is DEFAULT_FORMAT_WEIGHT
    assert inspect.signature(reward).parameters["format_weight"].default is DEFAULT_FORMAT_WEIGHT


def test_rollout_defaults_are_the_schemas():
    group = inspect.signature(RolloutGroup).parameters
    for name in ("timeout_s", "refit_timeout_s", "max_retries", "num_gpus_per_worker", "placement_strategy"):
        assert group[name].default is getattr(RolloutConfig, name), name
    worker = inspect.signature(RolloutWorker).parameters
    homes = {"seed": RunConfig.seed, "dtype": ModelConfig.dtype, "max_model_len": RolloutConfig.max_model_len,
             "kv_cache_gib": RolloutConfig.kv_cache_gib,
             "gpu_memory_utilization": RolloutConfig.gpu_memory_utilization,
             "tensor_parallel_size": RolloutConfig.tensor_parallel_size, "enforce_eager": RolloutConfig.enforce_eager,
             "trust_remote_code": ModelConfig.trust_remote_code}
    for name, value in homes.items():
        assert worker[name].default is value, name
    assert (RolloutConfig.timeout_s, RolloutConfig.max_model_len, RolloutConfig.kv_cache_gib) == (600.0, 2048, 1)
