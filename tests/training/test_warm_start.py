"""Warm start: gold answer text, caching, a few steps teach the answer format, checkpoint names preserved."""

from __future__ import annotations

import pytest

from omni_rl.data.types import Sample
from omni_rl.models.families import get_family
from omni_rl.training.warm_start import (ABSTAIN_TEXT, THINK_HINT, answer_candidates, answer_pools, confused_text,
                                         gold_text, sample_confused, sample_gold, target_text, warm_start)
from omni_rl.verifiers import reward


def test_gold_text():
    assert gold_text("gui-coordinate", [10, 20, 30, 41], {}) == "(20, 30)"  # box centre (20, 30.5), rounded
    assert gold_text("gui-coordinate", [7, 9], {}) == "(7, 9)"
    assert gold_text("multiple-choice", "B", {}) == "B"
    assert gold_text("mathruler", 14, {}) == "14"


def test_confused_text_is_a_fixed_wrong_answer():
    """The flawed teacher's answer: the next entry of the sorted answer list (wrapping), the next option letter, the
    click point mirrored through the centre of its coordinate space."""
    pool = ["red", "green", "blue", "red", "yellow"]
    assert confused_text("string-match", "green", {}, pool) == "red"  # sorted: blue green red yellow
    assert confused_text("string-match", "yellow", {}, pool) == "blue"  # wraps
    assert confused_text("mathruler", 4, {}, ["1", "2", "3", "4"]) == "1"
    opts = {"A": "x", "B": "y", "C": "z"}
    assert confused_text("multiple-choice", "B", {"options": opts}, ["B"]) == "C"
    assert confused_text("multiple-choice", "C", {"options": opts}, ["B"]) == "A"
    assert confused_text("gui-coordinate", [10, 20, 30, 41], {"coord_space": "pixel", "image_size": [112, 56]},
                         []) == "(92, 26)"  # centre (20, 30.5) -> "(20, 30)" -> mirrored: (112 - 20, 56 - 30)
    assert confused_text("gui-coordinate", [100, 200, 300, 400], {"coord_space": "norm1000"}, []) == "(800, 700)"
    assert confused_text("string-match", "only", {}, ["only"]) == "only"  # nothing else to confuse it with
    # a transcript: every word replaced by the next word of the task's vocabulary (apple cloud river stone), so the
    # confusion shares no word with the gold answer and earns no 1 - WER credit
    asr_pool = ["apple river", "stone", "cloud apple stone"]
    assert confused_text("asr", "apple river", {}, asr_pool) == "cloud stone"
    assert confused_text("asr", "stone apple stone", {}, asr_pool) == "apple cloud apple"  # wraps
    assert reward(target_text("cloud stone"), "asr", "apple river").outcome == 0.0


def test_unanswerable_rows_are_taught_to_abstain():
    """A row with unanswerable: true has no gold answer: the teacher's target is the abstention, which the verifiers
    score 1 on that row; its confusion is the answer after the abstention in its pool (the warm start passes the gold
    answers of the rows with the same verifier), the abstention itself when the pool has nothing else."""
    row = Sample(id="u", source="mix", messages=[], verifier="string-match", answer=None, unanswerable=True)
    assert sample_gold(row) == ABSTAIN_TEXT == "unanswerable"
    assert reward(target_text(sample_gold(row)), "string-match", None, unanswerable=True).reward == 1.0
    assert sample_confused(row, ["unanswerable", "unanswerable"]) == "unanswerable"  # nothing else to confuse it with
    assert sample_confused(row, ["red", "unanswerable", "blue"]) == "blue"  # sorted: blue red unanswerable (wraps)
    assert answer_candidates(row, ["unanswerable", "red"]) == ["red", "unanswerable"]
    answered = Sample(id="a", source="mix", messages=[], verifier="string-match", answer="red")
    assert sample_gold(answered) == "red" and sample_confused(answered, ["red", "unanswerable"]) == "unanswerable"
    # a source of unanswerable rows only: its rows are confused with an answer of another string-match source
    colour = Sample(id="c", source="colour", messages=[], verifier="string-match", answer="yellow")
    maths = Sample(id="m", source="maths", messages=[], verifier="mathruler", answer="7")
    pools = answer_pools([row, colour, maths, row])
    assert pools == [["unanswerable", "yellow", "unanswerable"], ["yellow"], ["7"], pools[0]]
    assert sample_confused(row, pools[0]) == "yellow" and answer_candidates(row, pools[0]) == ["unanswerable", "yellow"]


@pytest.mark.slow
def test_warm_start_teaches_format_and_is_cached(tmp_path, tiny_dir):
    import torch

    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import render_prompt
    from omni_rl.data.synthetic import generate_suite
    from omni_rl.models import load_policy

    suite = generate_suite(tmp_path / "suite", tasks=["text_math"], n_per_task=16, seed=3)
    base = tiny_dir("text")
    kw = dict(family=get_family("text"), steps=60, lr=3e-3, seed=0, label_noise=0.0, batch_size=4, max_read_steps=0)
    out = warm_start(base, suite, **kw)
    assert out.parent == base.parent and out.name.startswith(base.name + "-")
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert warm_start(base, suite, **kw) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime  # cache hit, not retrained
    model, tok = load_policy(out, get_family("text"))
    prompt = render_prompt(load_samples(suite).samples[0], tok, enable_thinking=True, video_fps=2.0,
                           video_max_frames=8)
    ids = torch.tensor([prompt.prompt_ids])
    gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    text = tok.decode(gen[0, ids.shape[1]:])
    assert text.startswith(f"<think>\n{THINK_HINT}\n</think>\n\n\\boxed{{"), text
    base_model, _ = load_policy(base, get_family("text"))
    assert not torch.equal(base_model.lm_head.weight, model.lm_head.weight)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["audio", "omni"])
def test_warm_start_keeps_checkpoint_names(family, tmp_path, tiny_dir):
    """The warm checkpoint has exactly the base checkpoint's tensor names (what vLLM loads) and other files."""
    from safetensors import safe_open

    from omni_rl.data.synthetic import generate_suite

    suite = generate_suite(tmp_path / "suite", tasks=["audio_pitch", "text_math"], n_per_task=2, seed=0)
    base = tiny_dir(family)
    out = warm_start(base, suite, family=get_family(family), steps=1, lr=1e-3, seed=0, label_noise=0.0, batch_size=2,
                     max_read_steps=0)
    with safe_open(str(base / "model.safetensors"), "pt") as a, safe_open(str(out / "model.safetensors"), "pt") as b:
        assert set(a.keys()) == set(b.keys())
    assert {f.name for f in base.iterdir()} <= {f.name for f in out.iterdir()}


@pytest.mark.slow
def test_warm_start_reads_first_then_imitates_the_flawed_teacher(tmp_path, tiny_dir):
    """Phase 1 (clean labels) stops at the first check where every source prefers its gold answer over the confused
    one by >= read_target; phase 2 (label noise 0.8, always the confusion) moves that preference below 0.5; both are
    recorded in warm_start.json."""
    import json

    from omni_rl.data.synthetic import generate_suite

    suite = generate_suite(tmp_path / "suite", tasks=["text_math"], n_per_task=8, seed=1)
    out = warm_start(tiny_dir("text"), suite, family=get_family("text"), steps=40, lr=3e-3, seed=0, label_noise=0.8,
                     batch_size=8, read_target=0.9, max_read_steps=400, check_every=20)
    report = json.loads((out / "warm_start.json").read_text())
    assert 0 < report["read_steps"] < 400 and report["read_steps"] % 20 == 0, report
    assert report["read_preference"]["text_math"] >= 0.9, report
    assert report["final_preference"]["text_math"] < 0.5, report


def test_concurrent_warm_starts_train_once(tmp_path, monkeypatch):
    """Two runs that start together on a cold cache (e.g. two stages launched at once): the second waits for the
    first one's warm start and reuses it instead of training the same model again."""
    import threading
    import time

    import omni_rl.training.warm_start as ws

    model = tmp_path / "models" / "tiny-omni"
    model.mkdir(parents=True)
    suite = tmp_path / "train.jsonl"
    suite.write_text("{}\n")
    calls = []

    def fake_train(model_dir, family, suite_jsonl, out, **kw):  # stands in for the training loop only
        calls.append(out)
        time.sleep(0.5)
        (out / "config.json").write_text("{}")
        return {"steps_run": kw["steps"]}

    monkeypatch.setattr(ws, "_train", fake_train)
    results = []
    omni = get_family("omni")
    threads = [threading.Thread(target=lambda: results.append(warm_start(model, suite, family=omni, steps=7)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(calls) == 1 and len(results) == 2 and results[0] == results[1]
    assert (results[0] / "warm_start.json").is_file() and not list(model.parent.glob(".tiny-omni-ws-*-*"))


def test_focus_draws_three_quarters_from_unread_sources():
    """`focus=True`: with sources b and c unread, a slot is drawn from their rows with probability 3/4 + 1/4 x 2/3
    (the rest come from all rows, 2 of 3 of them b or c): 11/12 of 12000 draws, within 4 standard deviations; without
    focus, or once nothing is unread, the draws are plain shuffled epochs over all rows."""
    import random

    from omni_rl.training.warm_start import _Phase

    sources = ["a"] * 10 + ["b"] * 10 + ["c"] * 10

    def phase(focus):
        return _Phase(None, [None] * 30, [], [], [], sources, pad_id=0, batch_size=16, rng=random.Random(0),
                      focus=focus)

    p = phase(True)
    p.unread = {"b", "c"}
    draws = [p._next() for _ in range(12000)]
    share = sum(sources[i] != "a" for i in draws) / len(draws)
    sd = (11 / 12 * 1 / 12 / 12000) ** 0.5
    assert abs(share - 11 / 12) < 4 * sd
    plain = phase(False)
    plain.unread = {"b", "c"}
    epoch = [plain._next() for _ in range(30)]
    assert sorted(epoch) == list(range(30))  # one shuffled pass over every row
    p.unread = set()
    p.order = []
    assert sorted(p._next() for _ in range(30)) == list(range(30))
