"""Session fixtures: tiny models built offline (cached under $OMNI_RL_CACHE/models)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def text_model_path():
    from omni_rl.models.tiny import build_tiny_model

    return str(build_tiny_model("text"))


@pytest.fixture(scope="session")
def omni_model_path():
    from omni_rl.models.tiny import build_tiny_model

    return str(build_tiny_model("omni"))
