"""`omni-rl run stage=image_rl trainer.strategy=fsdp2 trainer.num_workers=2`: the default image stage with its
trainer sharded over 2 gloo ranks (Ray actors) trains end to end (every step has a gradient, trainer and vLLM
log-probs agree after every refit of the gathered weights), checkpoints hold one optimizer shard per rank, and a run
resumed from them continues. Exactness of FSDP2 itself: tests/training/test_dp_exact.py."""

from __future__ import annotations

import json

import pytest

from stage_runs import metrics, run_stage

pytestmark = pytest.mark.slow

COMMON = ["stage=image_rl", "trainer.strategy=fsdp2", "trainer.num_workers=2", "run.prompts_per_step=4", "rollout.n=4",
          "run.eval_every=0", "run.checkpoint_every=1", "run.keep_last=1", "logging.plot=false", "verify.num_workers=1"]


def test_image_rl_trains_on_two_fsdp2_ranks_and_resumes(tmp_path):
    out = run_stage(tmp_path / "run", *COMMON, "run.steps=3")  # the stage's warm start, shared with the image e2e
    rows = metrics(out)
    assert [r["step"] for r in rows] == [0, 1, 2]
    trained = [r for r in rows if "train/grad_norm" in r]
    assert trained, "no step trained"
    for r in trained:
        assert r["train/grad_norm"] > 0
        assert r["train/logprob_abs_diff_mean"] < 1e-4  # vLLM got the gathered weights of the sharded trainer
    ckpt = out / "checkpoints" / "step_000002"
    assert {p.name for p in ckpt.glob("trainer_state*")} == {f"trainer_state.rank{r}.{ext}" for r in (0, 1)
                                                                for ext in ("json", "safetensors")}
    assert (out / "final" / "model.safetensors").is_file()
    startup = json.loads((out / "startup.json").read_text())  # where the fixed seconds went
    assert {"process", "setup", "setup/policy", "setup/data", "setup/ray", "verifiers", "workers", "workers/trainer",
            "workers/rollout"} <= set(startup) and min(startup.values()) >= 0
    for phase in ("setup", "workers"):  # parts that run side by side end within their phase
        assert startup[phase] >= max(v for k, v in startup.items() if k.startswith(phase + "/"))

    run_stage(out, *COMMON, "run.steps=4", "run.resume=true")
    assert [r["step"] for r in metrics(out)] == [0, 1, 2, 3]
