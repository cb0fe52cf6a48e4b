"""Loading a checkpoint dir as the trainable HF module + its processor, and the module-name -> checkpoint-name map.

Every function takes the run's `ModelFamily` (`omni_rl.models.families`, resolved once by the controller), which
says what trains (the loaded model, or its `submodule`, e.g. omni's `.thinker`) and how a trained parameter's name
maps to its checkpoint name (`key_prefixes`; each family module holds its rules).

`checkpoint_key` gives the name a parameter has in the checkpoint's safetensors files; vLLM's `load_weights` /
`reload_weights(weights_iterator=...)` accepts exactly those names, so the weight refit sends
`(checkpoint_key(n), tensor)` pairs. (vLLM also accepts transformers' in-memory names for `vl`, but not for `omni`,
where the `thinker.` prefix is what routes a weight to the thinker.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily


def transformers_without_sklearn() -> None:
    """Keep transformers from importing scikit-learn (installed with librosa): `transformers.generation` imports
    `sklearn.metrics` at import time (seconds per process: docs/benchmarks.md, start-up) for assisted generation's
    `roc_curve` alone, which omni-rl never runs. Call before transformers' auto classes or vLLM are imported; a no-op
    after."""
    import sys

    if "transformers.generation.candidate_generator" in sys.modules:
        return
    import transformers.utils

    transformers.utils.is_sklearn_available = lambda: False


def checkpoint_prefix(family: ModelFamily) -> str:
    """The prefix that turns a trainable-module name into a checkpoint name when it is a plain prefix ("thinker."
    for omni, "" for text); families with per-submodule renames raise (use `checkpoint_key`)."""
    rules = family.key_prefixes
    if not rules:
        return ""
    if len(rules) == 1 and rules[0][0] == "":
        return rules[0][1]
    raise ValueError(f"family {family.name!r} renames per submodule; use checkpoint_key(name, family)")


def checkpoint_key(name: str, family: ModelFamily) -> str:
    """Checkpoint (safetensors / vLLM) name of the trainable module's parameter `name` (see module docstring)."""
    return family.checkpoint_key(name)


def _torch_dtype(dtype: Any) -> Any:
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def load_processor(path: str | Path, family: ModelFamily, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's HF processor (a tokenizer for text-only checkpoints). `trust_remote_code` lets transformers
    run processor / tokenizer code shipped in the checkpoint dir."""
    transformers_without_sklearn()
    from transformers import AutoProcessor, AutoTokenizer

    if family.tokenizer_only:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    return AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def load_model(path: str | Path, dtype: Any = "float32", *, family: ModelFamily,
               trust_remote_code: bool = False, empty: bool = False) -> Any:
    """The trainable HF module of the checkpoint (for omni: the thinker), in train mode off (eval()). Parameters the
    family never trains (`never_train`: weights vLLM ignores) come with requires_grad False. `empty`: the module
    built from the checkpoint's config with its parameters on the meta device (no memory, no values; buffers are
    real), for a caller that shards it and then loads only its shards (`omni_rl.training.fsdp.load_sharded`)."""
    transformers_without_sklearn()
    import transformers as tf

    fam = family
    if empty:
        from accelerate import init_empty_weights

        config = tf.AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        with init_empty_weights(include_buffers=False):
            cls = getattr(tf, fam.hf_class)
            if hasattr(cls, "from_config"):  # an Auto* class
                model = cls.from_config(config, dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code)
            else:  # a model class
                model = cls._from_config(config, dtype=_torch_dtype(dtype))
    else:
        model = getattr(tf, fam.hf_class).from_pretrained(str(path), dtype=_torch_dtype(dtype),
                                                           trust_remote_code=trust_remote_code)
    if fam.submodule is not None:
        model = getattr(model, fam.submodule)
    if fam.after_load is not None:
        model = fam.after_load(model)  # e.g. vl: transformers 5.19 video M-RoPE differs from vLLM's
    for name, p in model.named_parameters():
        if any(s in name for s in fam.never_train):
            p.requires_grad_(False)
    return model.eval()


def load_policy(path: str | Path, family: ModelFamily, dtype: Any = "float32") -> tuple[Any, Any]:
    """`(model, processor)`: the trainable module (see module docstring) and the checkpoint's processor."""
    return load_model(path, dtype, family=family), load_processor(path, family)


def sequence_inputs(prompt_ids: list[int], mm_tensors: dict[str, Any], response_ids: list[int]) -> dict[str, Any]:
    """Forward kwargs for scoring `prompt_ids + response_ids` (batch of 1) with the prompt's media tensors.

    Per-token media tensors (`mm_token_type_ids`, [1, P] for Qwen2.5-VL) are extended with zeros (= text) over the
    response; everything else (pixel_values, grid_thw, input_features, ...) is per-media and passed unchanged."""
    import torch

    ids = torch.tensor([list(prompt_ids) + list(response_ids)], dtype=torch.long)
    out: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    for key, value in mm_tensors.items():
        if key.endswith("token_type_ids"):
            value = torch.cat([value, value.new_zeros((value.shape[0], len(response_ids)))], dim=1)
        out[key] = value
    return out


def save_policy(model: Any, family: ModelFamily, template_dir: str | Path, out_dir: str | Path) -> Path:
    """Write `model` as a checkpoint dir loadable like `template_dir` (same config, tokenizer, processor files):
    every non-weight file is copied, the weights go to one `model.safetensors` under `checkpoint_key` names."""
    import shutil

    from safetensors.torch import save_file

    template, out = Path(template_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for f in template.iterdir():
        if f.is_file() and not f.name.startswith(("model.safetensors", "pytorch_model")):
            shutil.copy2(f, out / f.name)
    state = {checkpoint_key(k, family): v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
