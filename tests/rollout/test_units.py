"""Pure pieces of the rollout worker and media dedup: seeds, weight flattening / completeness, byte accounting.
No vLLM, no Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omni_rl.data.types import Prompt, Sample
from omni_rl.rollout.dedup import media_bytes, media_metrics, media_nbytes, unique_inputs
from omni_rl.rollout.worker import SEED_STRIDE, incomplete_modules, named_tensors, request_seed, weight_group


def _prompt(mm):
    s = Sample(id="x", source="t", messages=[], verifier="string-match", answer="a")
    return Prompt(sample=s, prompt_ids=[1, 2], vllm_inputs={"prompt_token_ids": [1], "multi_modal_data": mm})


# ------------------------------------------------------------------------------------------------------ seeds
def test_request_seed_ranges_are_disjoint():
    # (seed * 1_000_003 + j) * n: step seed 7, n 4 -> prompt 0 starts at 28_000_084, prompt 1 at 28_000_088
    assert request_seed(7, 0, 4) == 7 * 1_000_003 * 4 == 28_000_084
    assert request_seed(7, 1, 4) == 28_000_088
    children = [request_seed(s, j, 4) + k for s in range(3) for j in range(50) for k in range(4)]
    assert len(set(children)) == len(children) == 3 * 50 * 4


def test_request_seed_rejects_out_of_range_index():
    with pytest.raises(ValueError, match="prompt_index"):
        request_seed(0, SEED_STRIDE, 2)


# ---------------------------------------------------------------------------------------------------- weights
def test_named_tensors_flattens_pairs_and_chunks():
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    assert [n for n, _ in named_tensors([("a", a), ("b", b)])] == ["a", "b"]
    assert [n for n, _ in named_tensors([[("a", a)], [("b", b), ("c", c)]])] == ["a", "b", "c"]
    assert named_tensors([]) == []


def test_weight_group_keeps_fused_projections_together():
    assert weight_group("model.layers.0.self_attn.q_proj.weight") == "model.layers.0.self_attn.*_proj"
    assert weight_group("model.layers.0.self_attn.v_proj.bias") == "model.layers.0.self_attn.*_proj"
    assert weight_group("model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.*_proj"
    assert weight_group("model.norm.weight") == "model.norm"
    assert weight_group("lm_head.weight") == "lm_head"
    assert weight_group("visual.blocks.0.attn.qkv.bias") == "visual.blocks.0.attn.qkv"


def test_incomplete_modules():
    known = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
             "m.l0.attn.q_proj.weight", "m.l0.attn.k_proj.weight", "m.l0.attn.v_proj.weight",
             "m.l0.attn.o_proj.weight", "m.fc.weight", "m.fc.bias"]
    assert incomplete_modules(known, known) == []
    # a frozen embedding left out is fine (whole module), so is an unknown name
    assert incomplete_modules(["model.norm.weight", "lm_head.weight", "extra.w"], known) == []
    assert incomplete_modules(["m.l0.attn.q_proj.weight"], known) == ["m.l0.attn.*_proj"]
    assert incomplete_modules(["m.fc.weight", "model.norm.weight"], known) == ["m.fc"]


# ------------------------------------------------------------------------------------------------ media bytes
def test_media_nbytes_by_kind():
    img = Image.new("RGB", (64, 64))  # 64 * 64 * 3 = 12_288
    frames = np.zeros((8, 56, 56, 3), np.uint8)  # 8 * 56 * 56 * 3 = 75_264
    wav = np.zeros(24_000, np.float32)  # 1.5 s at 16 kHz * 4 bytes = 96_000
    meta = {"fps": 4.0, "total_num_frames": 8}
    assert media_nbytes(img) == 12_288
    assert media_nbytes({"video": [(frames, meta)]}) == 75_264
    assert media_nbytes({"audio": [(wav, 16_000)]}) == 96_000
    assert media_nbytes(torch.zeros(10, dtype=torch.float16)) == 20
    p = _prompt({"image": [img], "video": [(frames, meta)], "audio": [(wav, 16_000)]})
    assert media_bytes(p) == media_bytes(p.vllm_inputs) == 12_288 + 75_264 + 96_000
    assert media_bytes({"prompt_token_ids": [1, 2, 3]}) == 0


def test_unique_inputs_by_identity_and_metrics():
    img = Image.new("RGB", (64, 64))
    a, b = _prompt({"image": [img]}), _prompt({"image": [img, img]})
    inputs, slot = unique_inputs([a, b, a])  # `a` sampled twice in the step: one copy
    assert slot == [0, 1, 0] and inputs[0] is a.vllm_inputs and inputs[1] is b.vllm_inputs
    m = media_metrics([a, b, a], n=16, physical_bytes=3 * 12_288, sent_bytes=4 * 12_288)
    # unique: a (12_288) + b (24_576); logical: 16 copies of a, b, a = 16 * 49_152
    assert m == {"media/unique_bytes": 36_864.0, "media/logical_bytes": 786_432.0,
                 "media/physical_bytes": 36_864.0, "media/sent_bytes": 49_152.0, "media/physical_over_unique": 1.0}
    text_only = media_metrics([Prompt(sample=a.sample, prompt_ids=[1], vllm_inputs={"prompt_token_ids": [1]})],
                              n=4, physical_bytes=0, sent_bytes=0)
    assert text_only["media/logical_bytes"] == 0.0 and text_only["media/physical_over_unique"] == 1.0


def test_quiet_per_request_warnings_drops_only_the_repeated_lines():
    import logging

    from omni_rl.rollout.worker import _quiet_per_request_warnings

    _quiet_per_request_warnings()
    _quiet_per_request_warnings()  # idempotent: one filter per logger
    seen = []
    # Logger.filter runs the logger's own filters, whatever level or `disabled` flag earlier tests left behind
    for name in ("vllm.v1.worker.cpu_worker", "vllm.model_executor.model_loader.reload.layerwise"):
        log = logging.getLogger(name)
        assert len(log.filters) == 1
        for msg in ("CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, skip it.",
                    "MRotaryEmbedding: Failed to load weights", "SinusoidsPositionEmbedding: Failed to load weights",
                    "QKVParallelLinear: Failed to load weights", "RotaryEmbedding: something else"):
            record = log.makeRecord(name, logging.WARNING, __file__, 0, msg, None, None)
            if log.filter(record):
                seen.append(record.getMessage())
    assert seen == ["QKVParallelLinear: Failed to load weights", "RotaryEmbedding: something else"] * 2
