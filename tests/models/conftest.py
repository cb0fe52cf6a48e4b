"""One cache of tiny models per test session (each family builds in ~1-3 s)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_dir(tiny_cache):
    from omni_rl.models import build_tiny_model

    built = {}

    def get(family: str):
        if family not in built:
            built[family] = build_tiny_model(family, tiny_cache)
        return built[family]

    return get
