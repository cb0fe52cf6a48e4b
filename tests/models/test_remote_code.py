"""`model.trust_remote_code`: a checkpoint whose config and model classes ship as code inside the dir (`auto_map`)
is refused by transformers unless the flag is on, and with it loads through the family's loader (the text family's
`AutoModelForCausalLM`) as the checkpoint's own class, weights included."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from omni_rl.models.families import resolve_family
from omni_rl.models.policy import load_model, load_processor

CODE = '''
from transformers import Qwen3Config, Qwen3ForCausalLM


class ShippedConfig(Qwen3Config):
    model_type = "shipped_qwen3"


class ShippedForCausalLM(Qwen3ForCausalLM):
    config_class = ShippedConfig
    shipped_marker = 42
'''


@pytest.fixture()
def remote_dir(tiny_dir, tmp_path):
    src = tiny_dir("text")
    out = tmp_path / "shipped"
    shutil.copytree(src, out)
    (out / "shipped_model.py").write_text(CODE)
    config = json.loads((out / "config.json").read_text())
    config.update(model_type="shipped_qwen3", architectures=["ShippedForCausalLM"],
                  auto_map={"AutoConfig": "shipped_model.ShippedConfig",
                            "AutoModelForCausalLM": "shipped_model.ShippedForCausalLM"})
    (out / "config.json").write_text(json.dumps(config))
    return src, out


def test_remote_code_needs_the_flag_and_then_loads_the_shipped_class(remote_dir):
    src, path = remote_dir
    family = resolve_family(path)
    assert family.name == "text"  # *ForCausalLM: the family comes from config.json as for any checkpoint
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_model(path, "float32", family=family)
    model = load_model(path, "float32", family=family, trust_remote_code=True)
    assert type(model).__name__ == "ShippedForCausalLM" and model.shipped_marker == 42
    reference = load_model(src, "float32", family=family)
    ours, theirs = model.state_dict(), reference.state_dict()
    assert sorted(ours) == sorted(theirs) and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    tok = load_processor(path, family, trust_remote_code=True)
    assert tok("2 + 3")["input_ids"] == load_processor(src, family)("2 + 3")["input_ids"]
