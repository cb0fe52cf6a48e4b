"""`omni-rl run stage=image_rl trainer.strategy=fsdp2 trainer.num_workers=2`: the default image stage with its
trainer sharded over 2 gloo ranks (Ray actors) trains end to end (every step has a gradient, trainer and vLLM
log-probs agree after every refit of the gathered weights), checkpoints hold one optimizer shard per rank, and a run
SIGKILLed after a checkpoint and resumed from it reproduces the uninterrupted run: every logged metric and the final
weights. Exactness of FSDP2 itself: tests/training/test_dp_exact.py; the checkpoint format:
tests/training/test_checkpoint_state.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from stage_runs import ROOT, metrics, run_stage

pytestmark = pytest.mark.slow

COMMON = ["stage=image_rl", "trainer.strategy=fsdp2", "trainer.num_workers=2", "run.prompts_per_step=4", "rollout.n=4",
          "run.eval_every=0", "run.checkpoint_every=1", "run.keep_last=1", "logging.plot=false", "verify.num_workers=1"]


def _killed_run(out, *overrides: str) -> None:
    """`omni-rl run` that SIGKILLs its whole process group (Ray's processes included) after `run.stop_after_steps`,
    as a killed job dies: no final checkpoint, no cleanup."""
    p = subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", *overrides, "logging.wandb_mode=offline",
                        "logging.progress=false", f"run.output_dir={out}"], cwd=ROOT,
                       env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True, timeout=1800,
                       start_new_session=True)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stdout[-2000:] + p.stderr[-3000:])


def _deterministic(row: dict) -> dict:
    """A metrics row without wall-clock timings (as tests/controller/test_resume.py compares the replicated case)."""
    return {k: v for k, v in row.items()
            if not k.startswith(("time/", "throughput/")) and not k.endswith(("_s", "time_s"))}


def test_image_rl_trains_on_two_fsdp2_ranks_and_resumes(tmp_path):
    full = run_stage(tmp_path / "full", *COMMON, "run.steps=3")  # the stage's warm start, shared with the image e2e
    rows = metrics(full)
    assert [r["step"] for r in rows] == [0, 1, 2]
    trained = [r for r in rows if "train/grad_norm" in r]
    assert trained, "no step trained"
    for r in trained:
        assert r["train/grad_norm"] > 0
        assert r["train/logprob_abs_diff_mean"] < 1e-4  # vLLM got the gathered weights of the sharded trainer
    ckpt = full / "checkpoints" / "step_000002"
    assert {p.name for p in ckpt.glob("trainer_state*")} == {f"trainer_state.rank{r}.{ext}" for r in (0, 1)
                                                                for ext in ("json", "safetensors")}
    assert (full / "final" / "model.safetensors").is_file()
    startup = json.loads((full / "startup.json").read_text())  # where the fixed seconds went
    assert {"process", "setup", "setup/policy", "setup/data", "setup/ray", "verifiers", "workers", "workers/trainer",
            "workers/rollout"} <= set(startup) and min(startup.values()) >= 0
    for phase in ("setup", "workers"):  # parts that run side by side end within their phase
        assert startup[phase] >= max(v for k, v in startup.items() if k.startswith(phase + "/"))

    resumed = tmp_path / "resumed"  # killed after step 1's checkpoint, resumed for step 2
    _killed_run(resumed, *COMMON, "run.steps=3", "run.stop_after_steps=2")
    assert [p.name for p in (resumed / "checkpoints").glob("step_*")] == ["step_000001"]
    assert not (resumed / "final").exists()
    run_stage(resumed, *COMMON, "run.steps=3", "run.resume=true")

    # The resumed ranks start from the checkpoint's weights and AdamW shards; the reductions run in the same order
    # in both runs, so they agree to the tolerance the replicated resume test uses (in practice bit for bit).
    a, b = metrics(full), metrics(resumed)
    assert [r["step"] for r in b] == [0, 1, 2]  # no duplicated or missing steps in the resumed curve
    for ra, rb in zip(a, b):
        ra, rb = _deterministic(ra), _deterministic(rb)
        assert ra.keys() == rb.keys(), (ra["step"], ra.keys() ^ rb.keys())
        for key in sorted(ra):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6, abs=1e-7), (ra["step"], key)
    assert "train/loss" in a[2] and any("train/loss" in r for r in a[:2]), \
        "the resumed step or the steps before the checkpoint did not train: the comparison is vacuous"
    wa, wb = (load_file(str(run / "final" / "model.safetensors")) for run in (full, resumed))
    assert wa.keys() == wb.keys()
    for name, t in wa.items():
        torch.testing.assert_close(wb[name], t, rtol=1e-6, atol=1e-7, msg=name)
