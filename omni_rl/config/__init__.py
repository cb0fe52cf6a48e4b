"""Config schema (dataclasses, the only home of defaults) and Hydra composition."""

from omni_rl.config.compose import ConfigError, compose_config
from omni_rl.config.schema import OmniRLConfig, register_configs, to_object

__all__ = ["ConfigError", "OmniRLConfig", "compose_config", "register_configs", "to_object"]
