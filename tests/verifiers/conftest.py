"""Shared fixtures for the verifier tests.

``verifier_test_plugins`` (next to this file) is a plugin module whose decorators register the ``test-*`` verifiers;
it is loaded through the plugin mechanism (``load_plugins``), as a user's ``verify.plugins`` would be. This directory
is put on ``sys.path`` explicitly so that the pool's worker processes (which receive the parent's ``sys.path``) can
import it whatever pytest's import mode is.
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(scope="session", autouse=True)
def test_plugins():
    """The ``test-*`` verifiers of ``verifier_test_plugins``, loaded as a configured plugin."""
    from omni_rl.verifiers import load_plugins

    return load_plugins(["verifier_test_plugins"])["verifier_test_plugins"]


@pytest.fixture(scope="session")
def pool():
    """One 2-worker pool shared by the pool tests (worker start-up is the expensive part)."""
    from omni_rl.verifiers import VerifierPool

    with VerifierPool(2, timeout_s=2.0) as p:
        yield p
