"""`verify.plugins`: the modules a config lists are imported once at the start of every command that scores (run,
filter, build-preferences, dry run); their names score rollouts in the controller's verifier pool, in its worker
processes. A plugin that fails to import stops the command before anything starts."""

from __future__ import annotations

import sys
import uuid
from types import SimpleNamespace

import pytest

from omni_rl.config import compose_config
from omni_rl.controller import run_stage
from omni_rl.data.types import Rollout
from omni_rl.jobs.filter import run_filter
from omni_rl.jobs.preferences import run_build_preferences
from omni_rl.verifiers import PluginError
from omni_rl.wiring.verifiers import build_rollout_scorer


def test_configured_plugin_scores_in_the_worker_processes(tmp_path, monkeypatch, clean_registry):
    module, name = f"ctl_plugin_{uuid.uuid4().hex[:8]}", "ctl-length-parity"
    (tmp_path / f"{module}.py").write_text(
        "from omni_rl.verifiers import register_verifier\n\n"
        f"@register_verifier({name!r})\ndef parity(response, answer, **kwargs):\n"
        "    return 1.0 if len(response) % 2 == answer else 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = compose_config([f"verify.plugins=[{module}]", "verify.num_workers=2", "verify.format_weight=0.0"])
    pool = build_rollout_scorer(cfg)
    try:
        prompts = [SimpleNamespace(sample=SimpleNamespace(verifier=name, answer=a, verifier_kwargs={},
                                                          unanswerable=False)) for a in (0, 1)]
        texts = ["ab", "abc", "abcd"]
        groups = [[Rollout(prompt_index=i, token_ids=[], logprobs=[], text=t, finish_reason="stop", policy_version=0)
                   for t in texts] for i in range(2)]
        scored, stats = pool.score_groups(prompts, groups)
    finally:
        pool.close()
        sys.modules.pop(module, None)
    # answer 0: even lengths score 1 (ab, abcd); answer 1: odd (abc)
    assert [[s.outcome for s in g] for g in scored] == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert stats["errors"] == 0 and stats["by_verifier"][name]["n"] == 6


@pytest.mark.parametrize("command", [run_stage, run_filter, run_build_preferences])
def test_a_plugin_that_fails_to_import_stops_the_command_first(tmp_path, command):
    out = tmp_path / "out"
    cfg = compose_config(["verify.plugins=[no_such_plugin_xyz]", f"run.output_dir={out}"])
    with pytest.raises(PluginError, match="'no_such_plugin_xyz' failed to import"):
        command(cfg)
    assert not out.exists()  # nothing was started or written
