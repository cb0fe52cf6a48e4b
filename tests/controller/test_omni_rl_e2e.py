"""`omni-rl run stage=omni_rl`, briefly and end to end: every modality group of the omni mix (video with its own
soundtrack, video, image, audio QA, ASR, text, abstention) goes through real vLLM rollouts, the verifiers and four
GSPO updates of the tiny omni model, and every update trains.

The model gets a short warm start (400 steps of the flawed teacher, no reading phase): enough for it to follow the
answer format, so rewards vary inside a group and every step has something to train on (from the random model every
reward is 0, every group has zero variance and no step would train). Learning itself is measured by
`scripts/bench_train.py --stage omni_rl` (docs/training.md).

Logprob parity, trainer vs vLLM, on the same sampled tokens: the mean absolute token difference is ~1e-8 on batches
without `omni_av` rows and 1e-4..1e-3 on batches with them (vLLM 0.32 places the M-RoPE positions of a clip
interleaved with its soundtrack one token early; docs/data.md, "Rendering"). Which trained batch holds an `omni_av`
group depends on the sampled rewards, so the strict bound is checked on a second short run whose mixture leaves
`omni_av` out (every other modality in it), and the main run is held to the looser bound on every step.
"""

from __future__ import annotations

import math

import pytest
from stage_runs import metrics, run_stage

pytestmark = pytest.mark.slow

SOURCES = {"omni_av", "video_flash", "image_colour", "image_shape", "audio_pitch", "audio_beeps", "asr_words",
           "text_math", "unanswerable", "mismatch"}
STEPS = 4
STRICT_PARITY = 1e-4  # mean |logp_trainer - logp_vllm| per token, batches without interleaved clips
AV_PARITY = 5e-2  # the same with omni_av rows (the one-token M-RoPE offset of vLLM's interleaving; ~1e-3 seen)
COMMON = ("stage=omni_rl", "model.warm_start_read_steps=0", "model.warm_start_steps=400", "trainer.warmup_steps=1",
          "run.prompts_per_step=9", "rollout.n=4", "rollout.max_tokens=24", "data.synthetic_per_task=4",
          "data.eval_per_task=1", "verify.num_workers=1")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return run_stage(tmp_path_factory.mktemp("omni_rl") / "run", *COMMON, f"run.steps={STEPS}",
                     f"run.eval_every={STEPS}", "data.mixture={}")


@pytest.fixture(scope="module")
def no_av_run_dir(tmp_path_factory):
    """Two steps of every source but omni_av (same warm-started model: the cache is shared)."""
    return run_stage(tmp_path_factory.mktemp("omni_rl_no_av") / "run", *COMMON, "run.steps=2", "run.eval_every=0",
                     "data.mixture.omni_av=0")


def test_every_source_and_modality_is_rolled_out_and_scored(run_dir):
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(STEPS))
    # the held-out pass (before step 0 and after the last update) scores one row of every task
    evals = [r for r in rows if "eval/mean" in r]
    assert len(evals) == 2
    for r in evals:
        assert {k.split("/", 2)[2] for k in r if k.startswith("eval/source/")} == SOURCES
        assert {k.split("/", 2)[2] for k in r if k.startswith("eval/modality/")} == {"omni", "video", "image",
                                                                                   "audio", "text"}
        # abstention is reported on both kinds of row: right abstentions (unanswerable + mismatch), false ones
        assert 0.0 <= r["eval/abstain_rate/unanswerable"] <= 1.0
        assert 0.0 <= r["eval/abstain_rate/answerable"] <= 1.0
    trained = {k.split("/", 2)[2] for r in rows for k in r if k.startswith("reward/source/")}
    assert trained == SOURCES  # 36 prompts drawn uniformly from 40 rows of 10 tasks: every task (seed 0)
    assert all(math.isfinite(r["reward/mean"]) for r in rows)


def test_every_step_trains_with_logprob_parity(run_dir, no_av_run_dir):
    rows = metrics(run_dir)
    for r in rows:
        assert "train/skipped_empty_batch" not in r, r["step"]
        assert r["train/grad_norm"] > 0, r["step"]
        assert math.isfinite(r["train/loss"]), r["step"]
        assert r["train/logprob_abs_diff_mean"] < AV_PARITY, (r["step"], r["train/logprob_abs_diff_mean"])
    strict = metrics(no_av_run_dir)
    assert [r["step"] for r in strict] == [0, 1]
    for r in strict:
        assert "reward/source/omni_av" not in r
        assert "train/skipped_empty_batch" not in r, r["step"]
        assert r["train/grad_norm"] > 0, r["step"]
        assert r["train/logprob_abs_diff_mean"] < STRICT_PARITY, (r["step"], r["train/logprob_abs_diff_mean"])


def test_no_row_rejected_and_the_final_model_written(run_dir):
    """40 training and 10 held-out rows, the omni_av clips with their soundtracks among them: all usable."""
    for name in ("rejects.jsonl", "eval_rejects.jsonl"):
        path = run_dir / name
        assert not path.exists() or path.read_text() == "", path.read_text()[:500]
    assert (run_dir / "final" / "config.json").is_file()
