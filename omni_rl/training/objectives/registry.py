"""Objective registry: `algorithm.name` -> the `Objective` class that trains it.

Sources, looked up in this order:

1. The modules of this package (`omni_rl/training/objectives/*.py`): each registers its class with
   `@register_objective` when imported; they are imported on the first lookup. Adding an objective is one file here
   (plus its pure loss in `omni_rl.algorithms` when the math is new) and its tests.
2. Classes registered with `@register_objective` by any other imported module (a test, a user's code).
3. Installed packages, through the entry-point group ``omni_rl.objectives``::

       [project.entry-points."omni_rl.objectives"]
       my_objective = "my_pkg.objective:MyObjective"

A name registered twice by two different classes raises ValueError; an unknown name raises ValueError listing the
registered names.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from omni_rl.config.schema import AlgorithmConfig
    from omni_rl.training.objectives.base import Objective

ENTRY_POINT_GROUP = "omni_rl.objectives"
_NOT_OBJECTIVES = {"base", "registry"}  # the package's modules that define no objective
_registered: dict[str, type] = {}
_builtins_loaded = False
T = TypeVar("T", bound=type)


def register_objective(cls: T) -> T:
    """Class decorator: register `cls` under `cls.name` (its `algorithm.name`); returns `cls` unchanged."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"objective class {cls.__qualname__} needs a non-empty class attribute `name`")
    old = _registered.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"objective name {name!r} is already registered by {old.__module__}.{old.__qualname__}")
    _registered[name] = cls
    return cls


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_OBJECTIVES:
            importlib.import_module(f"{__package__}.{info.name}")


def _entry_points() -> dict[str, Callable[[], type]]:
    from importlib.metadata import entry_points

    return {ep.name: ep.load for ep in entry_points(group=ENTRY_POINT_GROUP)}


def objective_names() -> list[str]:
    """Every registered name (this package's, decorated elsewhere, installed entry points), sorted."""
    _load_builtins()
    return sorted(set(_registered) | set(_entry_points()))


def objective_class(name: str) -> type:
    """The class registered under `name`; ValueError listing the registered names when there is none."""
    _load_builtins()
    if name not in _registered:
        entry = _entry_points().get(name)
        if entry is None:
            raise ValueError(f"unknown objective algorithm.name={name!r}; registered: {', '.join(objective_names())}")
        cls = entry()
        if getattr(cls, "name", None) != name:
            raise ValueError(f"entry point {ENTRY_POINT_GROUP}:{name} loads {cls!r}, whose `name` is not {name!r}")
        register_objective(cls)
    return _registered[name]


def build_objective(algorithm: AlgorithmConfig, run_kind: str | None = None) -> Objective:
    """The objective `algorithm.name` selects, built from `algorithm`'s values; with `run_kind`, checks that the
    objective trains that kind of run (ValueError otherwise)."""
    cls = objective_class(algorithm.name)
    if run_kind is not None and cls.run_kind != run_kind:
        fits = [n for n in objective_names() if objective_class(n).run_kind == run_kind]
        raise ValueError(f"algorithm.name={algorithm.name} trains run.kind={cls.run_kind} runs, this run has "
                         f"run.kind={run_kind}: choose one of {', '.join(fits)}")
    return cls.from_config(algorithm)


def default_objective() -> Objective:
    """The objective of the schema's default `algorithm` section (what a worker trains when given none)."""
    from omni_rl.config.schema import AlgorithmConfig

    return build_objective(AlgorithmConfig())
