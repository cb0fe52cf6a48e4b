"""Which parameters are the vision encoder, audio encoder, projectors, LM body, input embeddings, LM head, router.

The trainer's freezing policy (e.g. text RL: only the LM trains and its input embeddings are frozen; MPO: audio
encoder and MoE router frozen) selects groups by these names. Every parameter lands in exactly one group: the first
matching rule decides, the family's own rules (`ModelFamily.param_rules`, in its module in `omni_rl.models.families`)
before the shared ones below (the Qwen / Llama module names: `visual`, `audio_tower`, `multi_modal_projector`,
`embed_tokens`, `lm_head`, MoE gates); everything else is `lm_body` (decoder layers, final norm).
tests/models/test_tiny.py checks the partition for every tiny family.

Names are those of `model.named_parameters()` of the module `omni_rl.models.policy.load_model` returns.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily

GROUPS = ("vision_encoder", "audio_encoder", "projector", "lm_body", "lm_embeddings", "lm_head", "router")

# Shared ordered rules: the first pattern that matches a parameter name decides its group.
_RULES: tuple[tuple[str, str], ...] = (
    ("projector", r"(^|\.)(visual|vision_tower)\.merger\.|(^|\.)audio_tower\.proj\.|"
                  r"(^|\.)(multi_modal_projector|mm_projector|projector)\."),
    ("vision_encoder", r"(^|\.)(visual|vision_tower|vision_encoder)\."),
    ("audio_encoder", r"(^|\.)(audio_tower|audio_model|audio_encoder)\."),
    ("lm_embeddings", r"(^|\.)embed_tokens\."),
    ("lm_head", r"(^|\.)lm_head\."),
    ("router", r"\.mlp\.gate\.|(^|\.)router\.|\.shared_expert_gate\."),
)


@functools.lru_cache(maxsize=None)
def _compiled(rules: tuple[tuple[str, str], ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((group, re.compile(pattern)) for group, pattern in rules)


def group_of(name: str, family: ModelFamily) -> str:
    """The group of one parameter name (see the module docstring)."""
    for group, pattern in _compiled(family.param_rules + _RULES):
        if pattern.search(name):
            return group
    return "lm_body"


def param_groups(model: Any, family: ModelFamily) -> dict[str, list[str]]:
    """`{group: [parameter names]}` for every group in GROUPS (empty lists included), in `named_parameters` order."""
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name, _ in model.named_parameters():
        groups[group_of(name, family)].append(name)
    return groups


def checkpoint_drift(before: Any, after: Any, family: ModelFamily) -> dict[str, dict[str, float]]:
    """How far each parameter group moved between two HF checkpoint dirs of one model of `family`, read from their
    safetensors (names classified as in `group_of`, e.g. `thinker.visual.merger.*` -> projector):
    `{group: {"tensors": n, "changed": tensors not bit-identical, "max_abs_diff": largest element change}}`,
    groups with no tensor left out. Raises when the two checkpoints do not hold the same tensor names and shapes."""
    from pathlib import Path

    import torch
    from safetensors import safe_open

    def tensors(path: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for file in sorted(Path(path).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in f.keys()})
        if not out:
            raise FileNotFoundError(f"{path} holds no *.safetensors")
        return out

    a, b = tensors(before), tensors(after)
    if {k: v.shape for k, v in a.items()} != {k: v.shape for k, v in b.items()}:
        raise ValueError(f"{before} and {after} are not the same model (tensor names or shapes differ)")
    drift: dict[str, dict[str, float]] = {}
    for name in sorted(a):
        d = drift.setdefault(group_of(name, family), {"tensors": 0, "changed": 0, "max_abs_diff": 0.0})
        d["tensors"] += 1
        if not torch.equal(a[name], b[name]):
            d["changed"] += 1
            diff = (a[name].double() - b[name].double()).abs().max().item()
            d["max_abs_diff"] = max(d["max_abs_diff"], diff)
    return drift
