"""Compose `configs/` (shipped as the package `omni_rl.configs`) with command-line `key=value` overrides."""

from __future__ import annotations

from collections.abc import Sequence

from omni_rl.config.schema import OmniRLConfig, register_configs, to_object


class ConfigError(ValueError):
    """A config could not be composed; the message says which key/value and what is allowed."""


def compose_config(overrides: Sequence[str] = (), *, config_name: str = "config") -> OmniRLConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="omni_rl.configs", version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        return to_object(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise ConfigError(
            f"{e}\n  (overrides: {' '.join(overrides) or '<none>'}; "
            "see `omni-rl show-config` for every key and its default)"
        ) from e
