"""A verifier plugin module for the tests: loaded like a user's plugin (``load_plugins(["verifier_test_plugins"])``,
``verify.plugins=[verifier_test_plugins]``), its decorators register the ``test-*`` names."""

from __future__ import annotations

import os
import time

from omni_rl.verifiers import register_verifier


@register_verifier("test-contains")
def contains(response, answer, **kwargs):
    """1.0 if the answer string occurs in the response."""
    return 1.0 if str(answer) in response else 0.0


@register_verifier("test-spin")
def spin(response, answer, **kwargs):
    """Never returns (a busy loop: no signal-friendly sleep)."""
    while True:
        pass


@register_verifier("test-sleep-long")
def sleep_long(response, answer, **kwargs):
    time.sleep(600)
    return 1.0


@register_verifier("test-boom")
def boom(response, answer, **kwargs):
    raise RuntimeError("boom from a plugin")


@register_verifier("test-nan")
def nan_score(response, answer, **kwargs):
    return float("nan")


@register_verifier("test-too-big")
def too_big(response, answer, **kwargs):
    return 7.0


@register_verifier("test-crash")
def crash(response, answer, **kwargs):
    os._exit(3)  # the worker process dies mid-item


@register_verifier("test-echo-kwargs")
def echo_kwargs(response, answer, **kwargs):
    return float(kwargs.get("value", 0.0))
