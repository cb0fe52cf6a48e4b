"""Clip ranges (eps_low, eps_high) of the ratio losses, in one place: `gspo_loss` and `grpo_loss` take them as
arguments, the config schema's `algorithm.*` defaults and the objectives read them from here. No torch import, so
`omni_rl.config.schema` can import this module."""

from __future__ import annotations

# GSPO's named clip ranges (`algorithm.clip_preset`): "recipe" is the public Nemotron 3 Nano Omni configs' range, the
# default we ship; "paper" is the GSPO paper's (Zheng et al., 2025).
CLIP_PRESETS: dict[str, tuple[float, float]] = {"recipe": (0.2, 0.28), "paper": (3e-4, 4e-4)}
GSPO_DEFAULT_PRESET = "recipe"
# GRPO's clip-higher range (`algorithm.grpo.eps_low` / `eps_high`): DAPO's (Yu et al., 2025).
DAPO_CLIP: tuple[float, float] = (0.2, 0.28)
