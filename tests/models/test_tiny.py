"""Tiny model builders: cache, determinism, concurrency, loading, parameter groups, checkpoint names, tokenizer."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os

import pytest

from omni_rl.models import (build_tiny_model, checkpoint_key, get_family, load_policy, param_groups,
                            tiny_families)
from omni_rl.models.parts import GROUPS


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_family_raises(tmp_path):
    with pytest.raises(ValueError, match="known: audio, nemotron_omni, omni, text, vl"):
        build_tiny_model("llama", tmp_path)


def test_cached_and_deterministic(tmp_path, tiny_dir):
    first = tiny_dir("text")
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model("text", first.parent) == first  # cache hit: same dir, not rewritten
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime
    other = build_tiny_model("text", tmp_path)  # fresh build elsewhere: byte-identical weights and tokenizer
    assert other.name == first.name
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _digest(other / f) == _digest(first / f), f
    seeded = build_tiny_model("text", tmp_path, seed=1)
    assert seeded != other and _digest(seeded / "model.safetensors") != _digest(other / "model.safetensors")


def test_default_cache_from_env(tmp_path, monkeypatch):
    from omni_rl.models.tiny import default_cache

    monkeypatch.setenv("OMNI_RL_CACHE", str(tmp_path))
    assert default_cache() == tmp_path / "models"


def _build_in(cache):
    return str(build_tiny_model("text", cache, seed=7))


def test_concurrent_builders_do_not_collide(tmp_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_build_in, [tmp_path, tmp_path])
    assert paths[0] == paths[1]
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(paths[0])]  # no leftover temp dirs
    model, _ = load_policy(paths[0], get_family("text"))
    assert type(model).__name__ == "Qwen3ForCausalLM"


@pytest.mark.parametrize("family", tiny_families())  # every registered family with a tiny model
def test_param_groups_partition_and_checkpoint_keys(family, tiny_dir):
    from safetensors import safe_open

    path = tiny_dir(family)
    model, processor = load_policy(path, get_family(family), "float32")
    groups = param_groups(model, get_family(family))
    assert tuple(groups) == GROUPS
    names = [n for n, _ in model.named_parameters()]
    assert sorted(sum(groups.values(), [])) == sorted(names)  # a partition: each parameter exactly once
    expected_nonempty = {"text": {"lm_body", "lm_embeddings", "lm_head"},
                         "omni": {"vision_encoder", "audio_encoder", "projector", "lm_body", "lm_embeddings",
                                  "lm_head"},
                         "vl": {"vision_encoder", "projector", "lm_body", "lm_embeddings", "lm_head"},
                         "audio": {"audio_encoder", "projector", "lm_body", "lm_embeddings", "lm_head"},
                         "nemotron_omni": {"vision_encoder", "audio_encoder", "projector", "lm_body", "lm_embeddings",
                                           "lm_head", "router"}}[family]
    assert {g for g, v in groups.items() if v} == expected_nonempty
    lm = "language_model." if family == "nemotron_omni" else ""  # NemotronH: `model.embeddings`, not embed_tokens
    assert len(groups["lm_embeddings"]) == 1 and groups["lm_embeddings"][0].endswith(
        f"{lm}model.embeddings.weight" if lm else "embed_tokens.weight")
    assert groups["lm_head"] == [f"{lm}lm_head.weight"]
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        saved = set(f.keys())
    assert {checkpoint_key(n, get_family(family)) for n in model.state_dict()} == saved


def test_checkpoint_key_examples():
    text, omni, vl, audio = (get_family(f) for f in ("text", "omni", "vl", "audio"))
    assert checkpoint_key("model.layers.0.mlp.up_proj.weight", text) == "model.layers.0.mlp.up_proj.weight"
    assert checkpoint_key("visual.merger.mlp.0.weight", omni) == "thinker.visual.merger.mlp.0.weight"
    assert checkpoint_key("model.language_model.norm.weight", vl) == "model.norm.weight"
    assert checkpoint_key("model.visual.blocks.0.attn.qkv.weight", vl) == "visual.blocks.0.attn.qkv.weight"
    assert checkpoint_key("model.language_model.norm.weight", audio) == "language_model.model.norm.weight"
    assert checkpoint_key("lm_head.weight", audio) == "language_model.lm_head.weight"


def test_omni_quirks_in_checkpoint(tiny_dir):
    import json

    cfg = json.loads((tiny_dir("omni") / "config.json").read_text())
    assert cfg["enable_audio_output"] is False
    assert cfg["thinker_config"]["text_config"]["tie_word_embeddings"] is False
    assert cfg["thinker_config"]["tie_word_embeddings"] is False
    assert (tiny_dir("omni") / "spk_dict.pt").is_file()


def test_chat_template_thinking_flag(tiny_dir):
    from omni_rl.models import load_processor

    tok = load_processor(tiny_dir("text"), get_family("text"))
    msgs = [{"role": "user", "content": "hi"}]
    on = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    off = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert on == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"
    assert tok.convert_tokens_to_ids("<think>") != tok.unk_token_id and len(tok.tokenize("<think>")) == 1


@pytest.mark.parametrize("family,named", [("omni", ("image_token", "video_token", "audio_token")),
                                          ("vl", ("image_token", "video_token")), ("audio", ("audio_token",)),
                                          ("nemotron_omni", ("image_token", "audio_token", "image_start_token",
                                                             "image_end_token", "audio_start_token",
                                                             "audio_end_token"))])
def test_banned_token_ids(family, named, tiny_dir):
    from omni_rl.data.render import banned_token_ids
    from omni_rl.models import load_processor

    processor = load_processor(tiny_dir(family), get_family(family))
    tok = processor.tokenizer
    banned = banned_token_ids(processor)
    assert banned == sorted(set(banned))
    for attr in named:  # a tokenizer attribute or (nemotron_omni's audio delimiters) a processor one
        assert tok.convert_tokens_to_ids(getattr(tok, attr, None) or getattr(processor, attr)) in banned
    for allowed in ("<|im_end|>", "<think>", "</think>"):
        assert tok.convert_tokens_to_ids(allowed) not in banned
    assert banned_token_ids(load_processor(tiny_dir("text"), get_family("text"))) == []


def test_model_path_decides_the_family_over_the_stage_default(tmp_path, tiny_dir):
    """`stage=text_rl_1` sets model.family=text for its built-in tiny model; given `model.path` of an omni checkpoint
    (e.g. the final/ of stage=mpo), the policy is the omni checkpoint, trained as omni."""
    from rich.console import Console

    from omni_rl.config.compose import compose_config
    from omni_rl.wiring.policy import build_policy
    from omni_rl.wiring.run import Run

    omni = tiny_dir("omni")
    cfg = compose_config(["stage=text_rl_1", f"model.path={omni}", f"run.output_dir={tmp_path / 'run'}"])
    assert cfg.model.family == "text"
    console = Console(record=True, width=200)
    policy = build_policy(cfg, Run(cfg=cfg, dir=tmp_path, console=console))
    assert (policy.path, policy.family.name) == (omni, "omni")
    assert "model.path is a checkpoint of family 'omni'" in console.export_text()
    text_cfg = compose_config(["stage=text_rl_1", f"model.path={tiny_dir('text')}"])
    assert build_policy(text_cfg, Run(cfg=text_cfg, dir=tmp_path, console=console)).family.name == "text"
    with pytest.raises(FileNotFoundError, match="no config.json"):
        bad = compose_config([f"model.path={tmp_path}"])
        build_policy(bad, Run(cfg=bad, dir=tmp_path, console=console))
