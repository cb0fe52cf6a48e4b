"""Module-level verifiers used by the tests through dotted paths (``verifier_test_plugins:spin`` ...)."""

from __future__ import annotations

import os
import time


def contains(response, answer, **kwargs):
    """1.0 if the answer string occurs in the response."""
    return 1.0 if str(answer) in response else 0.0


def spin(response, answer, **kwargs):
    """Never returns (a busy loop: no signal-friendly sleep)."""
    while True:
        pass


def sleep_long(response, answer, **kwargs):
    time.sleep(600)
    return 1.0


def boom(response, answer, **kwargs):
    raise RuntimeError("boom from a plugin")


def nan_score(response, answer, **kwargs):
    return float("nan")


def too_big(response, answer, **kwargs):
    return 7.0


def crash(response, answer, **kwargs):
    os._exit(3)  # the worker process dies mid-item


def echo_kwargs(response, answer, **kwargs):
    return float(kwargs.get("value", 0.0))
