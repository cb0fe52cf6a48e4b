"""Model families (`omni_rl.models.families`: one module per family), tiny offline model builders, policy loading,
parameter groups, checkpoint key names, the trainer's per-family forward pieces (`omni_rl.models.forward`).

Imports are lazy (PEP 562): `import omni_rl.models` pulls in no torch/transformers; the first attribute access loads
the submodule that defines it. This package imports nothing from the packages above it (training, rollout, controller,
jobs, config).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_tiny_model": "omni_rl.models.tiny",
    "family_names": "omni_rl.models.families",
    "get_family": "omni_rl.models.families",
    "resolve_family": "omni_rl.models.families",
    "tiny_families": "omni_rl.models.families",
    "default_cache": "omni_rl.models.tiny",
    "load_policy": "omni_rl.models.policy",
    "load_processor": "omni_rl.models.policy",
    "checkpoint_key": "omni_rl.models.policy",
    "checkpoint_prefix": "omni_rl.models.policy",
    "sequence_inputs": "omni_rl.models.policy",
    "save_policy": "omni_rl.models.policy",
    "param_groups": "omni_rl.models.parts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'omni_rl.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    # Cached so later look-ups skip this hook.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
