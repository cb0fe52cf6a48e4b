"""Which parameters are the vision encoder, audio encoder, projectors, LM body, input embeddings, LM head, router.

The trainer's freezing policy (e.g. text RL: only the LM trains and its input embeddings are frozen; MPO: audio
encoder and MoE router frozen) selects groups by these names. Every parameter lands in exactly one group.

  group          text (Qwen3)     omni thinker                     vl (Qwen2.5-VL)              audio (Qwen2-Audio)
  vision_encoder -                visual.* (not merger)            model.visual.* (not merger)  -
  audio_encoder  -                audio_tower.* (not proj)         -                            model.audio_tower.*
  projector      -                visual.merger.*, audio_tower.proj model.visual.merger.*       model.multi_modal_projector.*
  lm_embeddings  model.embed_tokens  model.embed_tokens            model.language_model.embed_tokens  (same)
  lm_head        lm_head          lm_head                          lm_head                      lm_head
  router         MoE gates (`.mlp.gate.`, `router`, NemotronH `.mixer.gate.`); empty for the dense tiny models
  lm_body        everything else (decoder layers, final norm)

nemotron_omni: vision_model.* -> vision_encoder, audio_tower.* -> audio_encoder, multi_modal_projector.* and
embed_audio.* -> projector, language_model.model.embeddings -> lm_embeddings, language_model.lm_head -> lm_head.

Names are those of `model.named_parameters()` of the module `omni_rl.models.policy.load_model` returns.
"""

from __future__ import annotations

import re
from typing import Any

GROUPS = ("vision_encoder", "audio_encoder", "projector", "lm_body", "lm_embeddings", "lm_head", "router")

# Ordered rules: the first pattern that matches a parameter name decides its group.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("projector", re.compile(r"(^|\.)(visual|vision_tower|vision_model)\.merger\.|(^|\.)audio_tower\.proj\.|"
                             r"(^|\.)(multi_modal_projector|mm_projector|projector|embed_audio)\.")),
    ("vision_encoder", re.compile(r"(^|\.)(visual|vision_tower|vision_model|vision_encoder)\.")),
    ("audio_encoder", re.compile(r"(^|\.)(audio_tower|audio_model|audio_encoder)\.")),
    ("lm_embeddings", re.compile(r"(^|\.)embed_tokens\.|^language_model\.model\.embeddings\.")),
    ("lm_head", re.compile(r"(^|\.)lm_head\.")),
    ("router", re.compile(r"\.mlp\.gate\.|(^|\.)router\.|\.shared_expert_gate\.|\.mixer\.gate\.")),
]


def group_of(name: str) -> str:
    """The group of one parameter name (see the module table)."""
    for group, pattern in _RULES:
        if pattern.search(name):
            return group
    return "lm_body"


def param_groups(model: Any, family: str) -> dict[str, list[str]]:
    """`{group: [parameter names]}` for every group in GROUPS (empty lists included), in `named_parameters` order.
    `family` is a registered family (omni_rl.models.families); the rules are name-based and the same for all."""
    from omni_rl.models.families import family_names

    if family not in family_names():
        raise ValueError(f"unknown family {family!r}; registered: {', '.join(family_names())}")
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name, _ in model.named_parameters():
        groups[group_of(name)].append(name)
    return groups


def checkpoint_drift(before: Any, after: Any) -> dict[str, dict[str, float]]:
    """How far each parameter group moved between two HF checkpoint dirs of one model, read from their safetensors
    (names classified as in the module table, e.g. `thinker.visual.merger.*` -> projector):
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
        d = drift.setdefault(group_of(name), {"tensors": 0, "changed": 0, "max_abs_diff": 0.0})
        d["tensors"] += 1
        if not torch.equal(a[name], b[name]):
            d["changed"] += 1
            diff = (a[name].double() - b[name].double()).abs().max().item()
            d["max_abs_diff"] = max(d["max_abs_diff"], diff)
    return drift
