"""The objective registry: `algorithm.name` -> objective, unknown and duplicate names, run kinds, pickling for Ray,
a custom objective registered here trained by the worker (loss, metrics, state through a checkpoint), and no branch
on an objective's name in the worker, the group or the group builders."""

from __future__ import annotations

import ast
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from training_helpers import TEXT, text_batch

from omni_rl.config.schema import AlgorithmConfig
from omni_rl.training.objectives import build_objective, objective_names, register_objective, registry
from omni_rl.training.objectives.base import MicroLoss, Objective, per_sequence
from omni_rl.training.worker import TrainerWorker, reduce_metrics

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = {"gspo": "rl", "grpo": "rl", "mpo": "preference"}


@dataclass
class ScaledNLL:
    """A test objective: scale x the token-mean NLL of each sequence, a step counter as state."""

    scale: float = 1.0
    steps: int = 0

    name: ClassVar[str] = "test_scaled_nll"
    run_kind: ClassVar[str] = "rl"
    unit: ClassVar[int] = 1
    uses_old_logp: ClassVar[bool] = False
    uses_reference: ClassVar[bool] = False
    sum_keys: ClassVar[tuple[str, ...]] = ("nll_sum",)
    max_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, algorithm: AlgorithmConfig) -> ScaledNLL:
        return cls(scale=float(algorithm.options.get("scale", 1.0)) + algorithm.kl_beta)

    def count(self, batch: Any) -> float:
        return batch.num_weighted

    def micro_loss(self, mb: Any, out: Any, score_reference: Any) -> MicroLoss:
        nll = -out.logp.sum(-1) / out.mask.sum(-1).clamp(min=1)  # [B]
        weights = per_sequence(mb, "weight", nll)
        return MicroLoss(self.scale * nll, weights, {"nll_sum": float((nll.detach() * weights).sum())})

    def end_step(self, sums: dict[str, float], all_reduce_sum: Any) -> None:
        self.steps += 1

    def reduce(self, tot: dict[str, float], per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
        return {"test/nll": tot["nll_sum"] / max(tot["num_weighted"], 1.0)}

    def metrics(self) -> dict[str, float]:
        return {"test/steps": float(self.steps)}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry's names as they are, restored after the test."""
    objective_names()  # the built-ins are imported before the copy
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))


def test_builtin_names_kinds_and_pickling():
    assert set(BUILTIN) <= set(objective_names())
    for name, kind in BUILTIN.items():
        obj = build_objective(AlgorithmConfig(name=name), run_kind=kind)
        assert isinstance(obj, Objective) and obj.name == name and obj.run_kind == kind
        assert pickle.loads(pickle.dumps(obj)) == obj  # what a Ray trainer actor receives


def test_unknown_name_lists_the_registered_names():
    with pytest.raises(ValueError) as e:
        build_objective(AlgorithmConfig(name="ppo"))
    assert str(e.value) == f"unknown objective algorithm.name='ppo'; registered: {', '.join(objective_names())}"
    assert "grpo, gspo, mpo" in str(e.value)


def test_name_of_another_run_kind_is_refused():
    with pytest.raises(ValueError, match=r"algorithm.name=mpo trains run.kind=preference runs, this run has "
                                         r"run.kind=rl: choose one of grpo, gspo"):
        build_objective(AlgorithmConfig(name="mpo"), run_kind="rl")


def test_a_name_taken_by_another_class_raises(scratch_registry):
    @dataclass
    class Other(ScaledNLL):
        name: ClassVar[str] = "gspo"

    with pytest.raises(ValueError, match="objective name 'gspo' is already registered by "
                                         "omni_rl.training.objectives.gspo.GSPOObjective"):
        register_objective(Other)


def test_custom_objective_is_built_and_trained_by_the_worker(scratch_registry, text_model_path, tmp_path):
    register_objective(ScaledNLL)
    obj = build_objective(AlgorithmConfig(name="test_scaled_nll", kl_beta=0.5, options={"scale": 1.5}), run_kind="rl")
    assert obj == ScaledNLL(scale=2.0)
    worker = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=4, objective=obj)
    batch = text_batch(seed=1)
    batch.sequences[5].weight = 0.0
    logp = worker.compute_logp(batch)
    nll = [-sum(row) / len(row) for row in logp]
    # step loss = sum_i w_i * 2 * nll_i / count (8 of 9 sequences weigh 1)
    expected = sum(2.0 * x * s.weight for x, s in zip(nll, batch.sequences)) / 8
    m = reduce_metrics([worker.train_step(batch, global_num_seqs=obj.count(batch))], worker.objective)
    assert m["train/loss"] == pytest.approx(expected, abs=1e-9)
    assert m["test/nll"] == pytest.approx(expected / 2, abs=1e-9)
    assert m["test/steps"] == 1.0 and obj.steps == 0  # the worker trains its own copy
    m = worker.train(batch, num_minibatches=2)  # the path the trainer group calls
    assert m["test/steps"] == 3.0 and m["train/optimizer_steps"] == 2.0  # the state after the last step
    worker.save(tmp_path / "ckpt")
    resumed = TrainerWorker(text_model_path, family=TEXT, warmup_steps=0, dtype="float64", micro_batch_size=4, objective=obj)
    resumed.load(tmp_path / "ckpt")
    assert resumed.objective.steps == 3


@pytest.mark.parametrize("path", ["omni_rl/training/worker.py", "omni_rl/training/group.py",
                                  "omni_rl/wiring/groups.py"])
def test_no_branch_on_an_objective_name(path):
    names = set(objective_names())
    tree = ast.parse((ROOT / path).read_text())
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & names, f"{path} names objectives {sorted(literals & names)}"
    identifiers = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not {i for i in identifiers if i.endswith("Objective") and i != "Objective"}


def test_docs_and_schema_name_every_objective():
    doc = (ROOT / "docs" / "training.md").read_text()
    for name in objective_names():
        assert f"`{name}`" in doc, name
        assert name in AlgorithmConfig.__doc__, name


def test_entry_point_objectives_are_found_and_checked(scratch_registry, monkeypatch):
    @dataclass
    class Misnamed(ScaledNLL):
        name: ClassVar[str] = "something_else"

    monkeypatch.setattr(registry, "_entry_points", lambda: {"test_scaled_nll": lambda: ScaledNLL,
                                                            "test_misnamed": lambda: Misnamed})
    assert {"test_scaled_nll", "test_misnamed"} <= set(objective_names())
    assert registry.objective_class("test_scaled_nll") is ScaledNLL
    with pytest.raises(ValueError, match="entry point omni_rl.objectives:test_misnamed loads"):
        registry.objective_class("test_misnamed")
