"""`algorithm.name` is checked against the objective registry and the stage's run.kind before anything loads: by
`run_stage`, and as a problem row of the dry run."""

import pytest

from omni_rl.config import compose_config
from omni_rl.controller import run_stage
from omni_rl.wiring.groups import build_objective
from omni_rl.controller.dry_run import objective_problems


def test_each_stage_kind_builds_its_objective():
    assert build_objective(compose_config(["algorithm.name=grpo"])).name == "grpo"
    assert build_objective(compose_config(["stage=mpo"])).name == "mpo"
    assert objective_problems(compose_config(["algorithm.name=grpo"])) == []


def test_unknown_name_is_a_dry_run_problem_and_stops_a_run():
    cfg = compose_config(["algorithm.name=ppo"])
    [row] = objective_problems(cfg)
    assert (row.name, row.ok) == ("algorithm.name", False)
    assert row.detail.startswith("unknown objective algorithm.name='ppo'; registered: grpo, gspo, mpo")
    with pytest.raises(ValueError, match="registered: grpo, gspo, mpo"):
        run_stage(cfg)


def test_objective_of_another_run_kind_is_refused():
    [row] = objective_problems(compose_config(["stage=mpo", "algorithm.name=grpo"]))
    assert row.detail == ("algorithm.name=grpo trains run.kind=rl runs, this run has run.kind=preference: choose one "
                          "of mpo")


def test_an_objectives_own_knobs_reach_it_through_algorithm_options():
    cfg = compose_config(["+algorithm.options.scale=2.5", "+algorithm.options.mode=sum"])
    assert dict(cfg.algorithm.options) == {"scale": 2.5, "mode": "sum"}
    assert dict(compose_config([]).algorithm.options) == {}
    assert build_objective(cfg).name == "gspo"  # the built-ins ignore options
