"""Nothing in the package unpickles: checkpoints, data rows and model outputs are untrusted, and unpickling runs code.

An `ast` scan of omni_rl/, verifiers/, environments/ and scripts/ for calls that can unpickle: `torch.load` without
`weights_only=True`, `pickle` / `cloudpickle` / `dill` / `marshal` loads, `joblib.load`, `numpy.load` with
`allow_pickle` not False, `pandas.read_pickle`. Import aliases (`import numpy as np`, `from pickle import loads`) are
followed. Ray's own object transport between our processes is not a load of untrusted bytes and is not scanned for.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("omni_rl", "verifiers", "environments", "scripts")

# dotted call name -> why it is refused (every call of it, whatever its arguments)
ALWAYS = {f"{mod}.{fn}": f"{mod} unpickles" for mod in ("pickle", "cloudpickle", "dill", "_pickle")
          for fn in ("load", "loads", "Unpickler")}
ALWAYS.update({f"marshal.{fn}": "marshal loads code objects and trusts its bytes" for fn in ("load", "loads")})
ALWAYS.update({"joblib.load": "joblib unpickles", "pandas.read_pickle": "read_pickle unpickles",
               "torch.serialization._load": "torch's raw unpickler", "shelve.open": "shelve unpickles"})


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """`np.load` -> "numpy.load" (through the module's imports); None for calls of anything but a dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unpickling_calls(source: str, filename: str = "<string>") -> list[str]:
    """`file:line: call (why)` for every call in `source` that may unpickle."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] == "dill":
                    found.append((node.lineno, "import dill", "dill unpickles"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            if node.module.split(".")[0] == "dill":
                found.append((node.lineno, f"from {node.module} import ...", "dill unpickles"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name is None:
            continue
        if name in ALWAYS:
            found.append((node.lineno, name, ALWAYS[name]))
        elif name == "torch.load" and not _keyword_is(node, "weights_only", True):
            found.append((node.lineno, name, "without weights_only=True"))
        elif name == "numpy.load" and any(k.arg == "allow_pickle" for k in node.keywords) \
                and not _keyword_is(node, "allow_pickle", False):
            found.append((node.lineno, name, "with allow_pickle"))
        elif name.startswith("dill."):
            found.append((node.lineno, name, "dill unpickles"))
    return [f"{filename}:{line}: {what} ({why})" for line, what, why in sorted(found)]


def test_the_package_unpickles_nothing():
    files = [f for d in SCANNED for f in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50  # the scan reached the package
    bad = [hit for f in files for hit in unpickling_calls(f.read_text(), str(f.relative_to(ROOT)))]
    assert not bad, "calls that can unpickle untrusted files:\n" + "\n".join(bad)


BAD = """\
import pickle, torch, numpy as np, pandas as pd, joblib, marshal
import cloudpickle as cp
from pickle import loads as unpickle
from torch import load as tload
import dill
x = pickle.load(f)
x = pickle.loads(b)
x = torch.load(p)
x = torch.load(p, weights_only=False)
x = tload(p, map_location="cpu")
x = np.load(p, allow_pickle=True)
x = np.load(p, allow_pickle=flag)
x = pd.read_pickle(p)
x = joblib.load(p)
x = marshal.loads(b)
x = cp.loads(b)
x = unpickle(b)
x = dill.loads(b)
x = pickle.Unpickler(f).load()
"""


def test_the_scan_names_every_unpickling_call_with_its_line():
    hits = unpickling_calls(BAD, "bad.py")
    lines = sorted({int(h.split(":")[1]) for h in hits})
    assert lines == [5] + list(range(6, 20)), hits  # the dill import and every call below it
    assert "bad.py:8: torch.load (without weights_only=True)" in hits
    assert "bad.py:10: torch.load (without weights_only=True)" in hits  # through `from torch import load as tload`
    assert "bad.py:17: pickle.loads (pickle unpickles)" in hits  # through `from pickle import loads as unpickle`
    assert "bad.py:12: numpy.load (with allow_pickle)" in hits  # not provably False


def test_the_scan_passes_safe_loads():
    good = """\
import torch, numpy as np, json
from safetensors.torch import load_file
x = torch.load(p, weights_only=True, map_location="cpu")
x = np.load(p)
x = np.load(p, allow_pickle=False)
x = json.loads(s)
x = load_file(p)
x = obj.load(p)
"""
    assert unpickling_calls(good) == []
