"""What the verifier worker processes import: only what the parent process's code chose (configured plugin modules,
functions registered or passed in code); an item's verifier string is a name, never an import path."""

from __future__ import annotations

import sys
import uuid

import pytest

from omni_rl.verifiers import VerifierPool, load_plugins, register_verifier

T = "<think>r</think> "
GOOD = {"verifier": "string-match", "answer": "paris", "response": T + r"\boxed{Paris}"}


@pytest.mark.parametrize("num_workers", [0, 1])
def test_hostile_names_score_zero_and_import_nothing(import_trap, num_workers):
    items = [GOOD] + [{"verifier": name, "answer": "1", "response": T + r"\boxed{1}"} for name in import_trap.names]
    with VerifierPool(num_workers, timeout_s=5.0) as p:  # started after the trap's folder is on sys.path
        results, stats = p.score(items)
    assert results[0].reward == 1.0 and results[0].error is None
    for name, r in zip(import_trap.names, results[1:]):
        assert r.reward == 0.0 and r.outcome == 0.0
        assert r.error.startswith("UnknownVerifierError: unknown verifier " + repr(name)), r.error
    assert stats["errors"] == len(import_trap.names) and stats["n"] == len(items)
    import_trap.assert_not_imported()


def test_worker_itself_never_imports_a_name(import_trap):
    """Items that bypass the parent's check (sent straight down the worker's connection) are unknown names too."""
    with VerifierPool(1, timeout_s=5.0) as p:
        p.score([GOOD])  # the worker is up and has its setup (whose sys.path includes the trap's folder)
        w = p._workers[0]
        for name in import_trap.names:
            w.conn.send(("chunk", [(0, {"verifier": name, "answer": "1", "response": "x"})], 0.1))
            tag, index, outcome, fmt, reward, error = w.conn.recv()
            assert (tag, index, reward) == ("r", 0, 0.0)
            assert error.startswith("UnknownVerifierError"), error
    import_trap.assert_not_imported()


def _plugin(tmp_path, monkeypatch, value: float) -> tuple[str, str]:
    """A plugin module in tmp_path registering one verifier that returns `value`; (module, name)."""
    tag = uuid.uuid4().hex[:8]
    module, name = f"pool_plugin_{tag}", f"fixed-{tag}"
    (tmp_path / f"{module}.py").write_text(
        "from omni_rl.verifiers import register_verifier\n\n"
        f"@register_verifier({name!r})\ndef fixed(response, answer, **kwargs):\n    return {value!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return module, name


def test_configured_plugin_reaches_the_workers(tmp_path, monkeypatch, clean_registry):
    module, name = _plugin(tmp_path, monkeypatch, 0.25)
    with VerifierPool(2, timeout_s=5.0, plugins=[module]) as p:
        results, stats = p.score([{"verifier": name, "answer": None, "response": "x"}] * 6)
    assert [r.outcome for r in results] == [0.25] * 6 and stats["errors"] == 0
    sys.modules.pop(module, None)


def test_plugin_loaded_after_start_reaches_running_workers(tmp_path, monkeypatch, clean_registry, pool):
    module, name = _plugin(tmp_path, monkeypatch, 0.75)
    item = {"verifier": name, "answer": None, "response": "x"}
    assert pool.score([item])[0][0].error.startswith("UnknownVerifierError")  # not configured yet
    restarts = pool.restarts
    load_plugins([module])
    results, _ = pool.score([item] * 4)
    assert [r.outcome for r in results] == [0.75] * 4
    assert pool.restarts == restarts  # the running workers got the new setup; none was replaced
    sys.modules.pop(module, None)


def test_functions_from_code_reach_the_workers(clean_registry, pool):
    from verifier_test_plugins import contains, echo_kwargs

    register_verifier("contains-by-code")(contains)  # registered by code, not by a plugin module

    @register_verifier("closure-by-code")
    def closure(response, answer, **kw):
        return 1.0

    items = [
        {"verifier": "contains-by-code", "answer": "b", "response": "abc"},
        {"verifier": echo_kwargs, "answer": None, "response": "x", "verifier_kwargs": {"value": 0.5}},  # a callable
        {"verifier": contains, "answer": "z", "response": "abc"},
        {"verifier": "closure-by-code", "answer": None, "response": "x"},
        {"verifier": lambda r, a: 1.0, "answer": None, "response": "x"},
    ]
    results, stats = pool.score(items)
    assert [r.outcome for r in results[:3]] == [1.0, 0.5, 0.0] and not any(r.error for r in results[:3])
    assert "importable module" in results[3].error and "importable module" in results[4].error
    assert stats["errors"] == 2
