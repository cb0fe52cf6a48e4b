"""Imports point down: every `omni_rl.<package>` import in omni_rl (module-level, function-level and TYPE_CHECKING
imports alike; `verifiers/` and `environments/` count as the installed `omni_rl.verifiers` / `omni_rl.environments`)
goes to a package of the same or a lower layer of `LAYERS`. A package or top-level module missing from `LAYERS`
fails too, so a new one gets a place."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"omni_rl": ROOT / "omni_rl", "omni_rl.verifiers": ROOT / "verifiers",
           "omni_rl.environments": ROOT / "environments"}

# bottom (0) to top; a package may import its own layer and the layers below it
LAYERS = {
    "__init__": 0,  # omni_rl/__init__.py: the version, nothing else
    "algorithms": 0,  # pure loss math
    "verifiers": 0,
    "logging": 0,
    "distributed": 0,  # Ray cluster and placement helpers
    "interrupts": 0,
    "locks": 0,
    "paths": 0,  # the cache root
    "data": 1,  # rows, media, rendering; rows name verifiers
    "config": 2,  # the schema checks values against data (synthetic tasks) and verifiers (abstention markers)
    "environments": 2,  # dataset adapters: rows (data) and verifier names
    "models": 3,
    "training": 4,
    "rollout": 4,
    "wiring": 5,  # what the loops and the jobs both build from the config
    "jobs": 6,
    "controller": 7,
    "bench": 8,  # benchmarks run the stage loops
    "doctor": 8,  # `omni-rl doctor`: builds a tiny model and starts vLLM
    "cli": 9,
}

# Upward imports tolerated for now, as (importing package, imported package): none. The test fails when one of them
# is gone (remove it here) and when an upward import not listed here appears.
PENDING: set[tuple[str, str]] = set()


def modules() -> list[tuple[str, Path]]:
    out = []
    for base, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            out.append((".".join([base, *rel.parts]).removesuffix(".__init__"), path))
    return out


def package_of(module: str) -> str | None:
    """`omni_rl.<x>...` -> x (omni_rl itself -> "__init__"); None for anything outside omni_rl."""
    parts = module.split(".")
    if parts[0] != "omni_rl":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(module: str, path: Path) -> list[tuple[str, int]]:
    """Every module `path` imports, as absolute names, with the line: `import a.b`, `from a import b` (a.b, which is
    either the module a.b or a name in a: both resolve to a's package), relative imports resolved."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return out


def upward_imports() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> where, for every import that goes up a layer."""
    found: dict[tuple[str, str], list[str]] = {}
    for module, path in modules():
        src = package_of(module)
        for target, line in imported_modules(module, path):
            dst = package_of(target)
            if dst is None or dst == src:
                continue
            if LAYERS[dst] > LAYERS[src]:
                where = found.setdefault((src, dst), [])
                if f"{path.relative_to(ROOT)}:{line}" not in where:  # `from a import b, c`: one line, two names
                    where.append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_every_package_has_a_layer():
    packages = {package_of(m) for m, _ in modules()}
    assert packages - set(LAYERS) == set(), "place these packages in LAYERS"
    assert set(LAYERS) - packages == set(), "LAYERS names packages that no longer exist"


def test_imports_point_down():
    found = upward_imports()
    new = {edge: where for edge, where in found.items() if edge not in PENDING}
    assert not new, "imports that go up a layer: " + "; ".join(
        f"{a} -> {b} ({LAYERS[a]} -> {LAYERS[b]}) at {', '.join(w)}" for (a, b), w in sorted(new.items()))
    gone = PENDING - set(found)
    assert not gone, f"no longer imported upwards, remove from PENDING: {sorted(gone)}"


def test_relative_and_from_imports_resolve_to_their_package(tmp_path):
    """The parser the two tests above rely on: `from . import x`, `from ..y import z`, `from omni_rl import w`."""
    pkg = tmp_path / "omni_rl" / "training"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("from . import batch\nfrom ..models import tiny\nfrom omni_rl import controller\n"
                                "def f():\n    import omni_rl.jobs.filter\n")
    got = [package_of(name) for name, _ in imported_modules("omni_rl.training.mod", pkg / "mod.py")]
    assert got == ["training", "models", "controller", "jobs"]
