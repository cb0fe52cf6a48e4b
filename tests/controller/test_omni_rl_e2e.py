"""`omni-rl run stage=omni_rl`, briefly and end to end: every modality group of the omni mix (video with its own
soundtrack, video, image, audio QA, ASR, text, abstention) goes through real vLLM rollouts, the verifiers and three
GSPO updates of the tiny omni model. Learning is measured by `scripts/bench_train.py --stage omni_rl` (docs/training.md);
this run starts from the random model (no warm start) to stay short."""

from __future__ import annotations

import math

import pytest
from stage_runs import metrics, run_stage

pytestmark = pytest.mark.slow

SOURCES = {"omni_av", "video_flash", "image_colour", "image_shape", "audio_pitch", "audio_beeps", "asr_words",
           "text_math", "unanswerable"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return run_stage(tmp_path_factory.mktemp("omni_rl") / "run", "stage=omni_rl", "model.warm_start=false",
                     "run.steps=3", "trainer.warmup_steps=1", "run.eval_every=3", "run.prompts_per_step=9", "rollout.n=2",
                     "rollout.max_tokens=16", "data.synthetic_per_task=4", "data.eval_per_task=1",
                     "data.mixture={}", "verify.num_workers=1")


def test_every_source_and_modality_is_rolled_out_and_scored(run_dir):
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    # the held-out pass (before step 0 and after the last update) scores one row of every task
    evals = [r for r in rows if "eval/mean" in r]
    assert len(evals) == 2
    for r in evals:
        assert {k.split("/", 2)[2] for k in r if k.startswith("eval/source/")} == SOURCES
        assert {k.split("/", 2)[2] for k in r if k.startswith("eval/modality/")} == {"omni", "video", "image",
                                                                                   "audio", "text"}
    trained = {k.split("/", 2)[2] for r in rows for k in r if k.startswith("reward/source/")}
    assert trained <= SOURCES and len(trained) >= 6  # 27 prompts drawn uniformly from 36 rows of 9 tasks
    assert all(math.isfinite(r["reward/mean"]) for r in rows)


def test_no_row_rejected_and_the_final_model_written(run_dir):
    """36 training and 9 held-out rows, the omni_av clips with their soundtracks among them: all usable."""
    for name in ("rejects.jsonl", "eval_rejects.jsonl"):
        path = run_dir / name
        assert not path.exists() or path.read_text() == "", path.read_text()[:500]
    assert (run_dir / "final" / "config.json").is_file()
