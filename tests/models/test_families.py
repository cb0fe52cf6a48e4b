"""The model-family registry: discovery, resolution from config.json (by architecture, else by model_type), the
one-line error for an unknown checkpoint, a family object that pickles to a Ray actor.

The checks every family must pass (encoder-once == per-rollout, vLLM parity, parameter groups and checkpoint names)
are parametrised over the registry in tests/training/test_forward.py, tests/models/test_vllm_parity.py and
tests/models/test_tiny.py, so a new family module is checked without editing them.
"""

from __future__ import annotations

import json

import pytest

from omni_rl.models.families import (UnknownModelError, family_names, family_of_config, get_family, resolve_family,
                                     tiny_families)


def test_registry_lists_the_family_modules():
    assert family_names() == ("audio", "nemotron_omni", "omni", "text", "vl")
    assert tiny_families() == ("audio", "nemotron_omni", "omni", "text", "vl")
    for name in family_names():
        fam = get_family(name)
        assert fam.name == name and fam.summary and fam.hf_class
        assert fam.forward.family == name
        assert "text" in fam.modalities


def test_unknown_family_name_lists_the_registered_ones():
    with pytest.raises(ValueError,
                       match=r"unknown model family 'llama'; registered: audio, nemotron_omni, omni, text, vl"):
        get_family("llama")


@pytest.mark.parametrize("arch, family", [
    ("Qwen2_5OmniForConditionalGeneration", "omni"), ("Qwen2_5OmniModel", "omni"),
    ("Qwen2_5_VLForConditionalGeneration", "vl"), ("Qwen2AudioForConditionalGeneration", "audio"),
    ("NemotronH_Omni_Reasoning_V3", "nemotron_omni"), ("NemotronH_Nano_Omni_Reasoning_V3", "nemotron_omni"),
    ("Qwen3ForCausalLM", "text"), ("LlamaForCausalLM", "text"), ("MistralForCausalLM", "text"),
])
def test_family_of_config(arch, family):
    assert family_of_config({"architectures": [arch]}).name == family


def test_causal_lm_class_of_a_model_type():
    from omni_rl.models.families import causal_lm_class

    assert (causal_lm_class("llama"), causal_lm_class("mistral")) == ("LlamaForCausalLM", "MistralForCausalLM")
    assert causal_lm_class("llava") == causal_lm_class(None) == causal_lm_class("no_such_type") == ""


def _refusal(path) -> str:
    """The UnknownModelError message for the checkpoint dir `path` (one line)."""
    with pytest.raises(UnknownModelError) as err:
        resolve_family(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_unknown_checkpoint_is_a_one_line_error_naming_the_families(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlavaForConditionalGeneration"],
                                                      "model_type": "llava"}))
    text = _refusal(tmp_path)
    assert text.startswith(f"{tmp_path / 'config.json'}: architecture 'LlavaForConditionalGeneration' (model_type "
                           "'llava') is not supported; supported families -- audio: Qwen2AudioForConditionalGeneration")
    assert "text: *ForCausalLM" in text and "omni_rl/models/families/" in text


def test_config_without_architectures_or_model_type_is_unknown():
    with pytest.raises(UnknownModelError, match=r"architecture '\(none\)' \(model_type None\)"):
        family_of_config({})


@pytest.mark.parametrize("config_class, family", [
    ("Qwen2_5_VLConfig", "vl"), ("Qwen2_5OmniConfig", "omni"), ("Qwen2AudioConfig", "audio"), ("Qwen3Config", "text"),
    ("MistralConfig", "text"), ("GemmaConfig", "text"),  # no family lists them: transformers' causal-LM class does
])
def test_config_saved_by_transformers_without_architectures_resolves_by_model_type(config_class, family, tmp_path):
    """A transformers config's own `save_pretrained` writes no `architectures` (only a model's does): the family comes
    from `model_type` (e.g. qwen2_5_vl)."""
    import transformers

    getattr(transformers, config_class)().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert "architectures" not in config
    assert resolve_family(tmp_path).name == family


def test_unknown_model_type_without_architectures_names_the_supported_families(tmp_path):
    from transformers import LlavaConfig

    LlavaConfig().save_pretrained(tmp_path)
    text = _refusal(tmp_path)
    assert text.startswith(f"{tmp_path / 'config.json'}: architecture '(none)' (model_type 'llava') is not supported; "
                           "supported families -- audio: Qwen2AudioForConditionalGeneration (model_type qwen2_audio)")
    assert "vl: Qwen2_5_VLForConditionalGeneration (model_type qwen2_5_vl)" in text


def test_resolve_family_of_a_tiny_model_reads_no_file(tmp_path):
    assert resolve_family(None, tiny="vl") is get_family("vl")
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        resolve_family(None, tiny="nope")


def test_not_a_checkpoint_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_family(tmp_path)


@pytest.mark.parametrize("name", family_names())
def test_family_pickles_by_reference(name):
    """What a Ray actor receives: every hook is a module-level name, so the object round-trips through pickle."""
    import pickle

    family = get_family(name)
    back = pickle.loads(pickle.dumps(family))
    assert back == family and back.forward is family.forward and back.build_tiny is family.build_tiny


@pytest.mark.parametrize("family, name, key", [
    ("omni", "model.layers.0.mlp.up_proj.weight", "thinker.model.layers.0.mlp.up_proj.weight"),
    ("vl", "model.language_model.norm.weight", "model.norm.weight"),
    ("vl", "model.visual.merger.mlp.0.bias", "visual.merger.mlp.0.bias"),
    ("audio", "model.language_model.norm.weight", "language_model.model.norm.weight"),
    ("audio", "lm_head.weight", "language_model.lm_head.weight"),
    ("text", "model.embed_tokens.weight", "model.embed_tokens.weight"),
    ("nemotron_omni", "language_model.model.layers.0.mixer.A_log", "language_model.model.layers.0.mixer.A_log"),
])
def test_checkpoint_key(family, name, key):
    assert get_family(family).checkpoint_key(name) == key


def test_transformers_loads_without_sklearn():
    """A fresh process that loads a processor the way omni-rl does never imports scikit-learn (librosa installs it;
    transformers would import sklearn.metrics at import time for a generation feature omni-rl does not use)."""
    import subprocess
    import sys

    code = ("import sys; from omni_rl.models.policy import transformers_without_sklearn; "
            "transformers_without_sklearn(); from transformers import AutoProcessor, AutoTokenizer; "
            "import transformers.generation; print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
