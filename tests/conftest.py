"""Test order for `scripts/test.sh`, which runs whole test files on 2 pytest-xdist workers (`--dist loadfile
--no-loadscope-reorder`: a file's module fixtures, such as an end-to-end run, are built once, on one worker).

The longest files go first, so the two workers finish together instead of one starting a 10-minute end-to-end run
at the end; files that reuse a cached warm start come after the file that builds it (a second builder would wait on
its lock with a core idle). Seconds are from one fresh-clone run on 2 workers (`bash scripts/test.sh`, which prints
the slowest durations); the order only changes the wall time, never what a test checks."""

from __future__ import annotations

import pytest

SLOWEST_FIRST = {  # file -> measured seconds (setup + calls), in the order the workers take them
    "tests/controller/test_omni_rl_e2e.py": 1700,  # the whole omni stage: its warm start and 200 steps
    "tests/controller/test_image_rl_e2e.py": 600,  # builds the omni warm start that the next two marked files reuse
    "tests/controller/test_curriculum_e2e.py": 380,
    "tests/controller/test_text_rl_e2e.py": 250,  # builds the text warm start that test_resume.py reuses
    "tests/controller/test_resume.py": 210,
    "tests/bench/test_trl_baseline.py": 220,
    "tests/controller/test_mpo_e2e.py": 240,  # omni warm start: after image_rl's has had time to finish
    "tests/jobs/test_filter_e2e.py": 280,  # omni warm start
    "tests/rollout/test_rollout_group.py": 110,
    "tests/bench/test_trl_mpo.py": 110,
    "tests/rollout/test_multimodal.py": 100,
    "tests/controller/test_dry_run.py": 90,  # a two-node Ray cluster with logical GPUs
    "tests/models/test_pretrained.py": 60,  # converts SmolLM2's GGUF
    "tests/training/test_dp_exact.py": 60,
    "tests/models/test_vllm_parity.py": 40,
    "tests/training/test_group.py": 40,
}


def pytest_collection_modifyitems(config, items):
    order = {path: i for i, path in enumerate(SLOWEST_FIRST)}

    def rank(item) -> int:
        return order.get(item.nodeid.split("::", 1)[0], len(order))

    items.sort(key=rank)  # stable: the order within a file, and of the unlisted files, stays


class ImportTrap:
    """A module on sys.path whose import would create `marker`; `names` are verifier names a hostile data row may
    carry (callables of the standard library and of this module). `assert_not_imported()` checks nothing ran."""

    def __init__(self, tmp_path, monkeypatch):
        import uuid

        self.module = f"trap_{uuid.uuid4().hex[:10]}"
        self.dir = tmp_path / "trap"
        self.dir.mkdir()
        self.marker = tmp_path / "imported.marker"
        (self.dir / f"{self.module}.py").write_text(
            f"open({str(self.marker)!r}, 'w').write('imported')\n\ndef score(response, answer, **kwargs):\n"
            "    return 1.0\n")
        monkeypatch.syspath_prepend(str(self.dir))
        self.names = ["builtins:eval", "os:system", "subprocess:call", f"{self.module}:score", self.module]

    def assert_not_imported(self) -> None:
        import sys

        assert not self.marker.exists(), "the trap module was imported"
        assert self.module not in sys.modules


@pytest.fixture
def import_trap(tmp_path, monkeypatch) -> ImportTrap:
    return ImportTrap(tmp_path, monkeypatch)


@pytest.fixture
def clean_registry():
    """Registrations and plugins made by the test are forgotten afterwards (what was registered before stays)."""
    from omni_rl.verifiers import registry

    saved = dict(registry._registered), {k: list(v) for k, v in registry._plugins.items()}
    yield
    with registry._lock:
        registry._registered.clear()
        registry._registered.update(saved[0])
        registry._plugins.clear()
        registry._plugins.update(saved[1])
        registry._resolved.clear()
        registry._entry_points_cache = None


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """One cache of tiny models per test session (each family builds in ~1-3 s)."""
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_dir(tiny_cache):
    """tiny_dir(family): the tiny model of `family` in the session's cache (built on first use)."""
    from omni_rl.models import build_tiny_model

    built = {}

    def get(family: str):
        if family not in built:
            built[family] = build_tiny_model(family, tiny_cache)
        return built[family]

    return get
