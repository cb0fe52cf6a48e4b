"""omni_rl.verifiers: rule-based rewards for RL post-training (installed from the repo folder ``verifiers/``).

Contract: ``get_verifier(name)`` returns ``fn(response_text, answer, **kwargs) -> float in [0, 1]``; the full response
goes in and the verifier extracts the final answer itself. Built-in names: ``string-match``, ``mathruler``,
``multiple-choice``, ``gui-coordinate``, ``asr``, ``format``. Your own: ``@register_verifier("name")`` in a module the
configuration lists (``verify.plugins``; ``load_plugins`` imports it), or an entry point of group ``omni_rl.verifiers``.
A data row names a verifier and never code. See ``docs/verifiers.md`` and ``docs/security.md``.

Importing this package is cheap: the built-in verifiers are imported on first use, and
``reward``/``score_batch``/``VerifierPool`` are loaded on first attribute access. Nothing here imports torch, ray or
vllm.
"""

from __future__ import annotations

from typing import Any

from .registry import (
    BUILTIN_VERIFIERS,
    ENTRY_POINT_GROUP,
    DuplicateVerifierError,
    PluginError,
    UnknownVerifierError,
    get_verifier,
    list_verifiers,
    load_plugins,
    register_verifier,
    verifier_exists,
)

__all__ = [
    "BUILTIN_VERIFIERS",
    "ENTRY_POINT_GROUP",
    "DuplicateVerifierError",
    "PluginError",
    "UnknownVerifierError",
    "get_verifier",
    "list_verifiers",
    "load_plugins",
    "register_verifier",
    "verifier_exists",
    "RewardResult",
    "reward",
    "score_one_safe",
    "score_batch",
    "VerifierPool",
    "extract_answer",
]

_LAZY = {
    "RewardResult": "combine",
    "reward": "combine",
    "score_one_safe": "combine",
    "score_batch": "pool",
    "VerifierPool": "pool",
    "extract_answer": "extract",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'omni_rl.verifiers' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
