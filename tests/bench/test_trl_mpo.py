"""The MPO modes of the TRL comparison (`omni_rl.bench.trl_mpo`): pair order, TRL rows, loss settings, omni-rl
overrides, and TRL 1.16's own DPO loss code against omni-rl's MPO objective on identical log-probs (no training)."""

from __future__ import annotations

import json
import math
import random

import pytest

from omni_rl.bench.trl_mpo import (MPOSideSpec, loss_check, omni_rl_mpo_overrides, pair_order, trl_mpo_losses,
                                   trl_pair_rows)
from omni_rl.data.pairs import Pair
from omni_rl.data.types import Sample

LN2 = math.log(2.0)
NEMOTRON = dict(beta=0.05, w_pref=0.8, w_quality=0.2, w_sft=0.0)
PAPER = dict(beta=0.1, w_pref=0.8, w_quality=0.2, w_sft=1.0)


def test_pair_order_is_omni_rls_step_order():
    order = pair_order(10, 3, 4, seed=7)
    # epoch e is a shuffle seeded "seed:e"; steps take consecutive slices and run over into the next epoch
    e0, e1 = list(range(10)), list(range(10))
    random.Random("7:0").shuffle(e0)
    random.Random("7:1").shuffle(e1)
    assert order == e0 + e1[:2]
    assert pair_order(10, 1, 4, seed=7) == order[:4]  # a step's pairs do not depend on how many steps follow


def test_trl_mpo_losses_drop_a_zero_sft_term():
    assert trl_mpo_losses(0.8, 0.2, 0.0) == (["sigmoid", "bco_pair"], [0.8, 0.2])
    assert trl_mpo_losses(0.8, 0.2, 1.0) == (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0])


@pytest.fixture(scope="module")
def text_tokenizer(tmp_path_factory):
    from omni_rl.models.tokenizer import train_tokenizer

    return train_tokenizer(tmp_path_factory.mktemp("tok"), family="text")


def _pair(messages: list) -> Pair:
    sample = Sample(id="s0", source="text_math", messages=messages, verifier="mathruler", answer="5")
    return Pair(id="s0#0", sample=sample, chosen="<think>\nok\n</think>\n\n\\boxed{5}", rejected="\\boxed{6}")


def test_trl_pair_rows_standard_is_omni_rls_prompt_and_response_ids(text_tokenizer):
    """TRL's text path tokenises prompt + chosen as one string and keeps what follows the prompt: with the standard
    rows that is exactly omni-rl's response ids (text, then EOS)."""
    from omni_rl.controller.preference import PairData
    from omni_rl.data.render import chat_text

    tok = text_tokenizer
    pair = _pair([{"role": "user", "content": "What is 2 + 3?"}])
    (row,) = trl_pair_rows([pair], tok, images=False)
    assert row["prompt"] == chat_text(pair.sample.messages, tok, enable_thinking=True)
    assert row["chosen"] == pair.chosen + tok.eos_token and row["rejected"] == pair.rejected + tok.eos_token
    ours = PairData([], type("P", (), {"processor": tok})(), cfg=None)
    prompt_ids = tok(row["prompt"], add_special_tokens=False)["input_ids"]
    for text, response in ((row["chosen"], pair.chosen), (row["rejected"], pair.rejected)):
        full = tok(row["prompt"] + text, add_special_tokens=False)["input_ids"]
        assert full[:len(prompt_ids)] == prompt_ids
        assert full[len(prompt_ids):] == ours.response_ids(response)


def test_trl_pair_rows_conversational_adds_the_templates_newline(text_tokenizer):
    """The conversational rows go through the chat template, whose assistant turn ends with <|im_end|> + newline:
    one completion token more than omni-rl trains on."""
    tok = text_tokenizer
    pair = _pair([{"role": "user", "content": [{"type": "text", "text": "What is 2 + 3?"}]}])
    (row,) = trl_pair_rows([pair], tok, images=False, fmt="conversational")
    assert row["prompt"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert row["chosen"] == [{"role": "assistant", "content": pair.chosen}]
    rendered = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    assert rendered.endswith(pair.chosen + tok.eos_token + "\n")
    with pytest.raises(ValueError, match="fmt"):
        trl_pair_rows([pair], tok, images=False, fmt="chatml")


def test_omni_rl_mpo_overrides_compose(tmp_path):
    from omni_rl.config import compose_config
    from omni_rl.config.schema import mpo_settings

    spec = MPOSideSpec(side="omni-rl", model_dir=str(tmp_path / "m"), pairs_path=str(tmp_path / "pairs.jsonl"),
                       family="vl", images=True, steps=6, pairs_per_step=16, pairs_per_micro_batch=8, lr=2e-4,
                       betas=[0.9, 0.98], weight_decay=0.1, grad_clip=1.0, seed=3, out_dir=str(tmp_path / "run"),
                       **PAPER)
    cfg = compose_config(omni_rl_mpo_overrides(spec))
    assert (cfg.run.kind, cfg.algorithm.name, cfg.model.family, cfg.run.eval_every) == ("preference", "mpo", "vl", 0)
    assert (cfg.run.steps, cfg.run.prompts_per_step, cfg.trainer.micro_batch_size) == (6, 16, 16)
    assert mpo_settings(cfg.algorithm.mpo) == {**PAPER, "delta_momentum": 0.99}
    assert (cfg.trainer.lr, cfg.trainer.warmup_steps, cfg.trainer.lr_schedule, cfg.trainer.weight_decay,
            cfg.trainer.betas) == (2e-4, 0, "constant", 0.1, [0.9, 0.98])
    assert not any(vars(cfg.trainer.freeze).values())
    json.dumps(spec.__dict__)  # crosses into the child process as JSON


def test_mpo_bench_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, json, omni_rl.bench.trl_mpo; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(json.loads(out.stdout.splitlines()[-1])) & {"torch", "ray", "vllm", "transformers", "trl"}


# ------------------------------------------------- TRL's own loss code vs omni-rl's objective (imports TRL: ~10 s)
def test_step_zero_loss_is_the_same_constant_on_both_sides():
    """Policy == reference (every log-ratio 0) and delta 0: DPO = ln 2 and BCO = 2 ln 2 per pair on both sides."""
    import torch

    from omni_rl.bench.trl_mpo import omni_rl_loss_on_logps, trl_loss_on_logps

    logps = -torch.rand(4, 5, dtype=torch.float64)
    mask = torch.ones(4, 5, dtype=torch.float64)
    args = (logps, mask, logps, mask, logps.sum(-1), logps.sum(-1))
    for fn in (trl_loss_on_logps, omni_rl_loss_on_logps):
        assert fn(*args, **NEMOTRON) == pytest.approx((0.8 + 0.2 * 2) * LN2, abs=1e-12)


@pytest.mark.parametrize("settings", [NEMOTRON, PAPER, dict(beta=0.3, w_pref=1.0, w_quality=0.5, w_sft=0.0)])
def test_trl_and_omni_rl_losses_agree_at_delta_zero(settings):
    equal = settings["w_sft"] > 0  # SFT terms agree only for equal chosen lengths (next test)
    for seed in range(3):
        r = loss_check(**settings, equal_lengths=equal, seed=seed)
        assert r["abs_diff"] < 1e-12, r


def test_sft_term_differs_with_unequal_lengths_by_the_token_mean():
    """TRL: mean NLL over all chosen tokens of the micro-batch; omni-rl: per-pair token mean, then mean over pairs."""
    import torch

    from omni_rl.bench.trl_mpo import omni_rl_loss_on_logps, trl_loss_on_logps

    c = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [-3.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    cm = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    sft_only = dict(beta=0.1, w_pref=0.0, w_quality=0.0, w_sft=1.0)
    args = (c, cm, c, cm, (c * cm).sum(-1), (c * cm).sum(-1))
    assert trl_loss_on_logps(*args, **sft_only) == pytest.approx((4 * 1.0 + 3.0) / 5, abs=1e-12)  # 1.4
    assert omni_rl_loss_on_logps(*args, **sft_only) == pytest.approx((1.0 + 3.0) / 2, abs=1e-12)  # 2.0


def test_delta_is_the_only_difference_of_the_bco_terms():
    """With delta != 0 omni-rl's loss exceeds TRL's by w_quality x (BCO(delta) - BCO(0)), averaged over pairs."""
    import torch
    import torch.nn.functional as F

    delta = 0.05
    r = loss_check(**NEMOTRON, delta=delta, seed=1)
    same = loss_check(**NEMOTRON, delta=0.0, seed=1)
    assert r["trl"] == same["trl"] and r["abs_diff"] > 1e-5
    # rebuild the rewards of loss_check(seed=1) from its own draw
    g = torch.Generator().manual_seed(1)
    lengths = [[int(torch.randint(1, 13, (1,), generator=g)) for _ in range(8)] for _ in range(2)]
    masks = [torch.tensor([[1.0] * n + [0.0] * (12 - n) for n in ls], dtype=torch.float64) for ls in lengths]
    logps = [-3.0 * torch.rand(8, 12, generator=g, dtype=torch.float64) for _ in range(2)]
    refs = [(lp * m).sum(-1) + torch.randn(8, generator=g, dtype=torch.float64) for lp, m in zip(logps, masks)]
    rc, rr = (0.05 * ((lp * m).sum(-1) - ref) for lp, m, ref in zip(logps, masks, refs))

    def bco(d: float) -> torch.Tensor:
        return (-F.logsigmoid(rc - d) - F.logsigmoid(-(rr - d))).mean()

    assert r["omni_rl"] - r["trl"] == pytest.approx(float(0.2 * (bco(delta) - bco(0.0))), abs=1e-12)


# ------------------------------------------------------------------------------------------------------- slow
def _write_pairs(samples: list[Sample], path) -> str:
    """Hand-made pairs (no generation): the right answer boxed after a think block vs a wrong one, lengths vary."""
    with open(path, "w") as f:
        for k, s in enumerate(samples):
            prompt = {"id": s.id, "source": s.source, "messages": s.messages, "verifier": s.verifier,
                      "answer": s.answer, "verifier_kwargs": s.verifier_kwargs}
            chosen = f"<think>\n{'check ' * (k % 3)}\n</think>\n\n\\boxed{{{s.answer}}}"
            f.write(json.dumps({"id": f"{s.id}#0", "prompt": prompt, "chosen": chosen,
                                "rejected": f"\\boxed{{wrong{k}}}"}) + "\n")
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("family,task", [("text", "text_math"), ("vl", "image_colour")])
def test_both_sides_train_on_the_same_tokens_and_agree_while_delta_is_zero(family, task, tmp_path):
    """Three steps of 4 pairs (micro-batches of 2) on each side, each in its own child process: identical token ids
    (and pixels), and the same loss at steps 0 and 1 (delta 0 on both) and the same step-0 grad norm."""
    from omni_rl.bench.trl_baseline import load_prompts
    from omni_rl.bench.trl_mpo import measure_mpo_side
    from omni_rl.data.synthetic import generate_suite
    from omni_rl.models.tiny import build_tiny_model

    model = build_tiny_model(family, tmp_path / "models")
    samples = load_prompts(generate_suite(tmp_path / "suite", tasks=[task], n_per_task=8, seed=0))
    pairs = _write_pairs(samples, tmp_path / "pairs.jsonl")
    common = dict(model_dir=str(model), pairs_path=pairs, family=family, images=family == "vl", steps=3,
                  pairs_per_step=4, pairs_per_micro_batch=2, lr=2e-3, betas=[0.9, 0.98], weight_decay=0.1,
                  grad_clip=1.0, seed=0, **NEMOTRON)
    res = {side: measure_mpo_side(MPOSideSpec(side=side, out_dir=str(tmp_path / side.replace("-", "_")), **common),
                                  timeout_s=900) for side in ("trl", "omni-rl")}
    trl, omni = res["trl"], res["omni-rl"]
    parity = trl["token_parity"]
    assert parity["identical_sequences"] == parity["sequences"] == 8, parity
    assert parity.get("pixel_values_max_abs_diff", 0.0) == 0.0
    assert len(trl["losses"]) == len(omni["losses"]) == 3
    assert omni["losses"][0] == pytest.approx((0.8 + 0.2 * 2) * LN2, abs=1e-6)  # policy == reference
    assert abs(omni["delta"][0]) < 1e-8  # the delta step 1 uses
    for step in (0, 1):
        assert omni["losses"][step] == pytest.approx(trl["losses"][step], abs=1e-5), step
    assert omni["grad_norms"][0] == pytest.approx(trl["grad_norms"][0], rel=1e-4)
    assert trl["precompute_ref_log_probs"] is (family == "text")
    assert all(math.isfinite(t) and t > 0 for r in res.values() for t in r["step_times_s"])
