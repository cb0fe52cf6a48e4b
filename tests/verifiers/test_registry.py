"""Verifier registry: built-ins, decorator, configured plugin modules, entry-point plugins; names never import code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from omni_rl.verifiers import (
    BUILTIN_VERIFIERS,
    DuplicateVerifierError,
    PluginError,
    UnknownVerifierError,
    get_verifier,
    list_verifiers,
    load_plugins,
    register_verifier,
    verifier_exists,
)
from omni_rl.verifiers import registry

BUILTINS = ["string-match", "mathruler", "multiple-choice", "gui-coordinate", "asr", "format"]


def test_builtin_names_resolve_lazily():
    assert sorted(BUILTIN_VERIFIERS) == sorted(BUILTINS)
    for name in BUILTINS:
        fn = get_verifier(name)
        assert callable(fn)
        assert get_verifier(name) is fn  # cached
    assert set(BUILTINS) <= set(list_verifiers())


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownVerifierError) as ei:
        get_verifier("no-such-verifier")
    msg = str(ei.value)
    assert "no-such-verifier" in msg
    for name in BUILTINS:
        assert name in msg
    assert isinstance(ei.value, KeyError)  # also catchable as a KeyError


def test_register_decorator_and_duplicates(clean_registry):
    @register_verifier("always-half")
    def half(response, answer, **kw):
        return 0.5

    assert get_verifier("always-half") is half
    assert "always-half" in list_verifiers()

    with pytest.raises(DuplicateVerifierError):
        @register_verifier("always-half")
        def other(response, answer, **kw):
            return 0.0

    with pytest.raises(DuplicateVerifierError):  # built-in names are taken
        register_verifier("mathruler")(lambda r, a, **k: 1.0)

    # registering the very same function again (module imported twice under spawn) is not a duplicate
    register_verifier("always-half")(half)


@pytest.mark.parametrize("bad", ["", "a:b", None])
def test_register_rejects_bad_names(bad):
    with pytest.raises(ValueError):
        register_verifier(bad)


def test_names_never_resolve_to_code(import_trap):
    """A data row's verifier string is a name: "module:function" spellings are unknown names, nothing is imported."""
    for name in import_trap.names:
        assert not verifier_exists(name)
        with pytest.raises(UnknownVerifierError, match="never code"):
            get_verifier(name)
        assert name not in list_verifiers()
    import_trap.assert_not_imported()


def test_callable_passes_through():
    def f(response, answer, **kw):
        return 1.0

    assert get_verifier(f) is f


def test_load_plugins(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "my_rewards_plugin.py").write_text(
        "from omni_rl.verifiers import register_verifier\n\n"
        "@register_verifier('halfway')\ndef halfway(response, answer, **kwargs):\n    return 0.5\n\n"
        "@register_verifier('quarter')\ndef quarter(response, answer, **kwargs):\n    return 0.25\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards_plugin", None)
    assert not verifier_exists("halfway")
    assert load_plugins(["my_rewards_plugin"]) == {"my_rewards_plugin": ["halfway", "quarter"]}
    assert get_verifier("halfway")("x", None) == 0.5 and verifier_exists("quarter")
    assert load_plugins(["my_rewards_plugin"]) == {"my_rewards_plugin": ["halfway", "quarter"]}  # once
    assert registry.worker_setup()["plugins"][-1] == "my_rewards_plugin"
    sys.modules.pop("my_rewards_plugin", None)


def test_load_plugins_errors(import_trap, clean_registry):
    with pytest.raises(PluginError, match="failed to import: ModuleNotFoundError"):
        load_plugins(["no_such_plugin_module_xyz"])
    for bad in ["builtins:eval", "my pkg", "", "a..b"]:
        with pytest.raises(PluginError, match="not a module name"):
            load_plugins([bad])
    import_trap.assert_not_imported()
    # a configured plugin is trusted and imported (this is what proves the trap would fire) ...
    with pytest.raises(PluginError, match="registered no verifier"):
        load_plugins([import_trap.module])
    assert import_trap.marker.exists()
    assert import_trap.module not in registry.worker_setup()["plugins"]  # ... but one that registers nothing fails


def test_worker_setup(clean_registry, test_plugins):
    from verifier_test_plugins import contains

    register_verifier("contains-reg")(contains)

    @register_verifier("closure-reg")
    def closure(response, answer, **kw):
        return 1.0

    setup = registry.worker_setup()
    assert "verifier_test_plugins" in setup["plugins"]
    assert setup["registered"]["contains-reg"] == "verifier_test_plugins:contains"
    assert not set(test_plugins) & set(setup["registered"])  # the plugin module re-registers its own names
    assert "importable module" in setup["unreachable"]["closure-reg"]
    assert registry.import_path(contains) == "verifier_test_plugins:contains"
    with pytest.raises(ValueError):
        registry.import_path(lambda r, a: 1.0)


@pytest.fixture
def installed_plugin(tmp_path):
    """A throwaway package declaring an ``omni_rl.verifiers`` entry point, pip-installed into this venv (offline)."""
    tag = uuid.uuid4().hex[:8]
    dist, pkg, ep = f"omni-rl-test-plugin-{tag}", f"omni_rl_test_plugin_{tag}", f"my_plugin_{tag}"
    root = tmp_path / "plugin"
    (root / pkg).mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.0.1"

        [project.entry-points."omni_rl.verifiers"]
        {ep} = "{pkg}:score"

        [tool.setuptools]
        packages = ["{pkg}"]
    """))
    (root / pkg / "__init__.py").write_text(
        "def score(response, answer, **kwargs):\n"
        "    return 1.0 if str(answer).lower() in response.lower() else 0.0\n")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield ep
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", dist], capture_output=True, timeout=300)


def test_entry_point_plugin(installed_plugin):
    ep = installed_plugin
    code = textwrap.dedent(f"""
        from omni_rl.verifiers import get_verifier, list_verifiers, reward
        fn = get_verifier({ep!r})
        assert {ep!r} in list_verifiers()
        print(fn("<think>x</think> The answer is PARIS", "paris"), fn("London", "paris"))
        print(reward("<think>x</think> \\\\boxed{{paris}}", {ep!r}, "Paris").reward)
    """)
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines == ["1.0", "0.0", "1.0"]


class _FakeEP:
    def __init__(self, name, value):
        self.name, self.value = name, value

    def load(self):
        return registry._import_target(self.value)


def test_entry_point_duplicates(clean_registry, monkeypatch):
    # (faked entry points: installing a plugin that shadows a built-in would break other tests sharing this venv)
    monkeypatch.setattr(registry, "_entry_points_cache", {
        "mathruler": _FakeEP("mathruler", "verifier_test_plugins:contains"),
        "plug": _FakeEP("plug", "verifier_test_plugins:contains"),
        "twice": registry._Conflict("twice", ["a:b", "c:d"]),
    })
    registry._resolved.clear()
    with pytest.raises(DuplicateVerifierError, match="built in"):
        get_verifier("mathruler")  # a plugin may not shadow a built-in name
    with pytest.raises(DuplicateVerifierError, match="several entry points"):
        get_verifier("twice")
    assert get_verifier("plug")("abc", "b") == 1.0
    with pytest.raises(DuplicateVerifierError, match="entry point"):
        register_verifier("plug")(lambda r, a, **k: 0.0)


def test_main_module_functions_cannot_go_to_workers():
    def f(response, answer, **kw):
        return 1.0

    f.__module__ = "__main__"
    f.__qualname__ = "f"
    with pytest.raises(ValueError, match="importable module"):
        registry.import_path(f)


def test_verifier_exists():
    for name in BUILTINS:
        assert verifier_exists(name)
    assert verifier_exists("test-contains")  # registered by the configured test plugin
    assert not verifier_exists("verifier_test_plugins:contains")
    assert not verifier_exists("no_such_module_xyz:fn")
    assert not verifier_exists("no-such-verifier")
    assert not verifier_exists("")
    assert not verifier_exists(None)
