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


def _omni_rl_imports(package: str) -> dict[str, set[str]]:
    """{file: omni_rl subpackages it imports (module level or inside functions)} for every module of `package`."""
    import ast
    from pathlib import Path

    import omni_rl

    root = Path(omni_rl.__file__).parent
    out: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            names |= {m.split(".")[1] for m in modules if m.startswith("omni_rl.")}
        out[str(path.relative_to(root))] = names
    return out


@pytest.mark.parametrize("package, above", [
    ("models", {"training", "rollout", "controller", "jobs", "config", "distributed", "bench"}),
    ("config", {"models", "training", "rollout", "controller", "jobs", "distributed", "bench"}),
    ("data", {"models", "training", "rollout", "controller", "jobs", "config", "distributed", "bench"}),
])
def test_lower_layers_import_nothing_above_them(package, above):
    """Imports point down: model families, the config schema and the data layer never import the layers that use
    them (function-level imports included)."""
    upward = {f: sorted(names & above) for f, names in _omni_rl_imports(package).items() if names & above}
    assert upward == {}
