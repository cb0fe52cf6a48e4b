"""README.md and docs/*.md against the code: every config key, `omni_rl.*` symbol, script path, verifier name and
objective name the docs mention exists, and the copied signatures and clip numbers match the code. A failure names
the doc file and the stale name."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import typing
from pathlib import Path

import pytest

from omni_rl.config import compose_config
from omni_rl.config.schema import OmniRLConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SECTIONS = {f.name for f in dataclasses.fields(OmniRLConfig)}
TICKS = re.compile(r"`([^`\n]+)`")

# dotted names in backticks that start like a config section but are not config keys
NOT_CONFIG = {
    "trainer.lrr",  # README.md: the misspelt key of the example error message
}
# prefixes of HF module paths (a checkpoint's parameter names, e.g. `model.visual.*`), which start like `model.`
HF_MODULES = ("model.audio_tower", "model.embed_tokens", "model.language_model", "model.multi_modal_projector",
              "model.visual", "model.model")
# `omni_rl.*` names that are not importable symbols
NOT_SYMBOLS = {
    "omni_rl.objectives",  # the entry-point group of third-party objectives (pyproject.toml)
}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _config_tokens(text: str):
    """`section.key` tokens inside backticks (a `key=value` override is checked by its key)."""
    for span in TICKS.findall(text):
        for token in span.split():
            token = token.lstrip("+~").split("=", 1)[0].rstrip(".,:;)")
            if re.fullmatch(r"[a-z_]+(\.[a-z_0-9*]+)+", token) and token.split(".")[0] in SECTIONS \
                    and token.rsplit(".", 1)[1] not in ("py", "sh", "md", "yaml", "json", "jsonl", "safetensors"):  # files
                yield token


def _key_exists(cfg: OmniRLConfig, dotted: str) -> bool:
    node: typing.Any = cfg
    for part in dotted.split("."):
        if isinstance(node, dict) or part == "*":  # a dict-valued key (mixture, resources, ...) takes any key
            return True
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            return False
        node = getattr(node, part)
        if node is None:  # an Optional section left unset: its type decides
            return True
    return True


def test_config_keys_in_docs_exist():
    cfg = compose_config()
    stale = [f"{_rel(doc)}: `{key}`" for doc in DOCS for key in sorted(set(_config_tokens(_text(doc))))
             if key not in NOT_CONFIG and not key.startswith(HF_MODULES) and not _key_exists(cfg, key)]
    assert not stale, "config keys the composed schema does not have:\n" + "\n".join(stale)


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_omni_rl_symbols_in_docs_import():
    stale = []
    for doc in DOCS:
        names = set(re.findall(r"\bomni_rl(?:\.[A-Za-z_][A-Za-z_0-9]*)+", _text(doc)))
        stale += [f"{_rel(doc)}: {n}" for n in sorted(names) if n not in NOT_SYMBOLS and not _resolve(n)]
    assert not stale, "omni_rl symbols that do not import:\n" + "\n".join(stale)


def test_script_paths_in_docs_exist():
    stale = []
    for doc in DOCS:
        paths = set(re.findall(r"\bscripts/[A-Za-z0-9_/.-]+?\.(?:py|sh)\b", _text(doc)))
        stale += [f"{_rel(doc)}: {p}" for p in sorted(paths) if not (ROOT / p).is_file()]
    assert not stale, "scripts the docs name that do not exist:\n" + "\n".join(stale)


def _builtin_verifiers() -> set[str]:
    from omni_rl.verifiers.registry import BUILTIN_VERIFIERS

    return set(BUILTIN_VERIFIERS)


def test_verifier_lists_in_docs_equal_the_registry():
    """Each "Built-in: `a`, `b`, ..." list and the table under docs/verifiers.md's "Built-in verifiers" heading name
    exactly the registry's built-in verifiers."""
    builtins, found = _builtin_verifiers(), 0
    for doc in DOCS:
        text = _text(doc)
        for m in re.finditer(r"[Bb]uilt-in(?::| \()\s*((?:`[a-z-]+`(?:,\s*|\s+and\s+)?)+)", text):
            listed = set(re.findall(r"`([a-z-]+)`", m.group(1)))
            found += 1
            assert listed == builtins, (f"{_rel(doc)}: built-in verifier list {sorted(listed)} != registry "
                                        f"{sorted(builtins)} (stale: {sorted(listed ^ builtins)})")
    table = _text(ROOT / "docs" / "verifiers.md").split("## Built-in verifiers", 1)[1].split("\n\n")[1]
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.M))
    assert listed == builtins, f"docs/verifiers.md: built-in verifier table {sorted(listed ^ builtins)} stale"
    assert found >= 2  # README.md and docs/data.md carry such a list


def test_objective_names_in_docs_equal_the_registry():
    from omni_rl.training.objectives.registry import objective_names

    names = set(objective_names())
    for doc in DOCS:
        for value in re.findall(r"algorithm\.name=([A-Za-z_]+)", _text(doc)):
            assert value in names, f"{_rel(doc)}: algorithm.name={value} is not a registered objective {sorted(names)}"
    header = next(line for line in _text(ROOT / "docs" / "training.md").splitlines()
                  if line.startswith("| | `") and "objectives/" in line)
    listed = set(re.findall(r"`([a-z_]+)` \(`objectives/", header))
    assert listed == names, f"docs/training.md: objective table lists {sorted(listed)}, registry {sorted(names)}"


def test_family_lists_in_docs_equal_the_registry():
    from omni_rl.models.families import family_names

    names = set(family_names())
    table = _text(ROOT / "docs" / "models.md").split("## Families", 1)[1].split("\n\n| family |", 1)[1].split("\n\n")[0]
    listed = set(re.findall(r"^\| `([a-z_0-9]+)`", table, flags=re.M))
    assert listed == names, f"docs/models.md: family table lists {sorted(listed)}, registry {sorted(names)}"
    readme = _text(ROOT / "README.md").split("one module per family (`omni_rl/models/families/`:", 1)[1].split(")", 1)[0]
    listed = set(re.findall(r"`([a-z_0-9]+)` =", readme))
    assert listed == names, f"README.md: the family list names {sorted(listed)}, registry {sorted(names)}"
    for doc in DOCS:
        for value in re.findall(r"model\.family=([A-Za-z_0-9]+)", _text(doc)):
            assert value in names, f"{_rel(doc)}: model.family={value} is not a registered family {sorted(names)}"


# signatures written out in docs code blocks: doc name -> the code symbol
SIGNATURES = {
    "gspo_loss": "omni_rl.algorithms.gspo.gspo_loss", "grpo_loss": "omni_rl.algorithms.grpo.grpo_loss",
    "group_advantages": "omni_rl.algorithms.advantages.group_advantages", "mpo_loss": "omni_rl.algorithms.mpo.mpo_loss",
    "TrainPrompt": "omni_rl.training.batch.TrainPrompt", "TrainSequence": "omni_rl.training.batch.TrainSequence",
    "TrainBatch": "omni_rl.training.batch.TrainBatch", "TrainerGroup": "omni_rl.training.group.TrainerGroup",
}


def _doc_signatures():
    for doc in DOCS:
        in_block, lines = False, _text(doc).splitlines()
        for i, line in enumerate(lines):
            if line.startswith("```"):
                in_block = not in_block
                continue
            line = re.sub(r"\s+#.*", "", line)  # a comment after the code
            m = re.match(r"([A-Za-z_][A-Za-z_0-9]*)\(", line)
            if in_block and m and m.group(1) in SIGNATURES:
                text, depth, j = line[m.end():], 1, i
                while depth > 0:  # the call may span lines
                    for k, c in enumerate(text):
                        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(c, 0)
                        if depth == 0:
                            text = text[:k]
                            break
                    else:
                        j += 1
                        text += " " + re.sub(r"\s+#.*", "", lines[j])
                yield doc, m.group(1), text


def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for c in text:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(c, 0)
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
    return [p for p in [*out, cur.strip()] if p and p not in ("*", "...")]


@pytest.mark.parametrize("doc,name,params", list(_doc_signatures()), ids=lambda v: getattr(v, "name", str(v))[:30])
def test_signatures_in_docs_match_the_code(doc, name, params):
    mod, _, attr = SIGNATURES[name].rpartition(".")
    sig = inspect.signature(getattr(importlib.import_module(mod), attr))
    code = list(sig.parameters.values())
    written = _split_params(params)
    names = [re.match(r"\**([A-Za-z_][A-Za-z_0-9]*)", p).group(1) for p in written]
    assert names == [p.name for p in code][:len(names)] and (len(names) == len(code) or written[-1] == "..."), \
        f"{_rel(doc)}: {name}({', '.join(names)}) != the code's {name}{sig}"
    for p, w in zip(code, written):
        if "=" in w and isinstance(p.default, (int, float, str, bool, tuple, type(None))):
            value = w.split("=", 1)[1].strip()
            try:
                assert ast.literal_eval(value) == p.default, f"{_rel(doc)}: {name}: {w} != the code's {p}"
            except (ValueError, SyntaxError):
                pass  # not a literal (a name): the parameter name is checked above


def test_clip_numbers_in_docs_are_the_codes():
    from omni_rl.algorithms.clip import CLIP_PRESETS, DAPO_CLIP

    text = _text(ROOT / "docs" / "algorithms.md")
    m = re.search(r"`CLIP_PRESETS = (\{[^`]*\})`", text)
    assert m and ast.literal_eval(m.group(1)) == CLIP_PRESETS, "docs/algorithms.md: CLIP_PRESETS differs from the code"
    m = re.search(r"`DAPO_CLIP = (\([^`]*\))`", text)
    assert m and ast.literal_eval(m.group(1)) == DAPO_CLIP, "docs/algorithms.md: DAPO_CLIP differs from the code"


def test_defaults_written_in_docs_are_the_schemas():
    """"`section.key` ... (default N)": N is the schema's default of that key (the stages' YAML may override it)."""
    defaults = OmniRLConfig()
    stale, checked = [], 0
    for doc in DOCS:
        for key, value in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`[^`.;|]{0,30}?default (-?[0-9][0-9_]*(?:\.[0-9]+)?)\b",
                                     _text(doc)):
            if key.split(".")[0] not in SECTIONS or not _key_exists(defaults, key):
                continue
            node: typing.Any = defaults
            for part in key.split("."):
                node = getattr(node, part)
            if float(node) != float(value):
                stale.append(f"{_rel(doc)}: `{key}` default {value}, the schema's is {node}")
            checked += 1
    assert not stale, "\n".join(stale)
    assert checked >= 9  # docs/filtering.md and docs/models.md state nine such defaults


FIGURE = re.compile(r"\b[\w/]+\.py:\d+|\b\d+(?:\.\d+)?x (?:faster|slower)|\bmeasured:? (?:about |~)?[\d.]+")


def test_docstrings_carry_no_figures_or_third_party_line_numbers():
    """Measured figures go stale in code: they live in docs/benchmarks.md with the command that measures them."""
    import ast

    found = []
    for folder in (ROOT / "omni_rl", ROOT / "verifiers", ROOT / "environments"):
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text())
            nodes = [tree, *(n for n in ast.walk(tree)
                             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
            for node in nodes:
                doc = ast.get_docstring(node) or ""
                found += [f"{_rel(path)}: {m.group(0)!r}" for m in FIGURE.finditer(doc)]
    assert not found, "figures in docstrings (move them to docs/benchmarks.md): " + "; ".join(found)
