"""Training objectives: what a trainer rank computes from one micro-batch's scored sequences.

`base` holds the `Objective` protocol (read its docstring first) and what objectives share, `registry` maps
`algorithm.name` to a class, and each other module of this package is one objective that registers itself: `gspo`
(rollouts), `grpo` (rollouts, token-level), `mpo` (preference pairs). This `__init__` imports the registry only (no
torch); `build_objective` imports the objectives.
"""

from omni_rl.training.objectives.registry import (build_objective, default_objective, objective_class,
                                                  objective_names, register_objective)

__all__ = ["build_objective", "default_objective", "objective_class", "objective_names", "register_objective"]
