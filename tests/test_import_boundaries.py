"""Import boundaries: pure layers never pull in ray/vllm; package __init__s import nothing heavy."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "ray", "vllm", "transformers")


def _imported_after(stmt: str) -> set[str]:
    code = f"import sys, json\n{stmt}\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("pkg", ["omni_rl", "omni_rl.data", "omni_rl.algorithms", "omni_rl.rollout", "omni_rl.training",
                                 "omni_rl.training.objectives", "omni_rl.controller", "omni_rl.distributed", "omni_rl.models", "omni_rl.logging",
                                 "omni_rl.config", "omni_rl.environments", "omni_rl.cli"])
def test_package_init_imports_nothing_heavy(pkg):
    loaded = _imported_after(f"import {pkg}")
    assert not loaded & set(HEAVY), f"`import {pkg}` pulled in {sorted(loaded & set(HEAVY))}"


def test_verifiers_import_no_torch_ray_vllm():
    loaded = _imported_after(
        "import omni_rl.verifiers as v\n"
        "for n in v.list_verifiers(): v.get_verifier(n)\n"
        "import omni_rl.verifiers.pool"
    )
    assert not loaded & {"torch", "ray", "vllm"}, sorted(loaded & {"torch", "ray", "vllm"})


def test_algorithms_import_no_ray_vllm():
    loaded = _imported_after("import omni_rl.algorithms.gspo, omni_rl.algorithms.mpo, omni_rl.algorithms.advantages")
    assert "torch" in loaded
    assert not loaded & {"ray", "vllm"}, sorted(loaded & {"ray", "vllm"})


def test_not_shadowing_pypi_names():
    """We install omni_rl.verifiers / omni_rl.environments, never top-level `verifiers` / `environments`."""
    out = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                          "print(u.find_spec('omni_rl.verifiers') is not None, u.find_spec('verifiers'), "
                          "u.find_spec('environments'))"], capture_output=True, text=True, check=True,
                         cwd="/")
    assert out.stdout.split() == ["True", "None", "None"]
