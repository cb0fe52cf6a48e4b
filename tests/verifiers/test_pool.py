"""Process-pool batch scoring: deadlines, kill-and-replace, errors counted, reuse across calls."""

from __future__ import annotations

import time

import pytest

from omni_rl.verifiers import VerifierPool, reward, score_batch
from omni_rl.verifiers.pool import TIMEOUT_ERROR

T = "<think>some reasoning</think> "


def _good_items(n: int) -> list[dict]:
    kinds = [
        ("mathruler", r"\frac{1}{2}", T + r"\boxed{0.5}", 1.0),
        ("mathruler", "3", T + r"\boxed{4}", 0.1),
        ("multiple-choice", "B", T + r"\boxed{B}", 1.0),
        ("string-match", "paris", T + r"\boxed{Paris}", 1.0),
        ("gui-coordinate", [500, 500], T + r"\boxed{(550, 500)}", 0.9 * 4 / 9 + 0.1),
        ("asr", "hello world", T + r"\boxed{hello there world}", 0.9 * 0.5 + 0.1),
    ]
    out = []
    for i in range(n):
        v, a, r, e = kinds[i % len(kinds)]
        out.append({"verifier": v, "answer": a, "response": r, "expected": e})
    return out


def _check(items, results):
    for it, r in zip(items, results):
        if "expected" in it:
            assert r.error is None, r.error
            assert r.reward == pytest.approx(it["expected"], abs=1e-9), it


def test_matches_in_process_scores(pool):
    items = _good_items(60)
    results, stats = pool.score(items)
    _check(items, results)
    for it, r in zip(items, results):
        assert r == reward(it["response"], it["verifier"], it["answer"])
    assert stats["n"] == 60 and stats["errors"] == 0 and stats["timeouts"] == 0
    assert stats["by_verifier"]["mathruler"]["n"] == 20
    assert stats["seconds"] > 0


def test_stuck_item_times_out_and_batch_continues(pool):
    items = _good_items(40)
    items.insert(5, {"verifier": "test-spin", "answer": "x", "response": "x"})
    items.insert(30, {"verifier": "test-sleep-long", "answer": "x", "response": "x"})
    items.append({"verifier": "mathruler", "answer": "1", "response": T + r"\boxed{9^{9^{9^{9^9}}}}"})
    restarts = pool.restarts
    t0 = time.monotonic()
    results, stats = pool.score(items)
    elapsed = time.monotonic() - t0
    assert results[5].error == TIMEOUT_ERROR and results[5].reward == 0.0
    assert results[30].error == TIMEOUT_ERROR and results[30].reward == 0.0
    assert results[-1].error is None and results[-1].outcome == 0.0  # the guard answers at once, no timeout
    _check(items, results)  # every other item of the batch scored correctly
    assert stats["timeouts"] == 2 and stats["errors"] == 0
    assert stats["by_verifier"]["test-spin"]["timeouts"] == 1
    assert pool.restarts == restarts + 2
    # hang detection (deadline 2 s per stuck item, items overlap on 2 workers); not a performance threshold
    assert elapsed < 60
    # the pool is still healthy afterwards
    again, stats = pool.score(_good_items(12))
    _check(_good_items(12), again)


def test_errors_are_counted_not_swallowed(pool, caplog):
    items = _good_items(6) + [
        {"verifier": "test-boom", "answer": 1, "response": "x"},
        {"verifier": "no-such-verifier", "answer": 1, "response": "x"},
        {"verifier": "mathruler", "response": "x"},  # answer missing -> TypeError in mathruler
        {"answer": 1, "response": "x"},  # no verifier at all
        {"verifier": "test-nan", "answer": 1, "response": "x"},
    ]
    with caplog.at_level("WARNING", logger="omni_rl.verifiers.pool"):
        results, stats = pool.score(items)
    _check(items, results)
    assert stats["errors"] == 5 and stats["timeouts"] == 0
    assert results[6].error.startswith("RuntimeError: boom")
    assert "UnknownVerifierError" in results[7].error
    assert results[9].error.startswith("KeyError")
    assert all(r.reward == 0.0 for r in results[6:])
    assert "5 errors" in caplog.text


def test_worker_crash_scores_zero_and_is_replaced(pool):
    items = _good_items(10)
    items.insert(3, {"verifier": "test-crash", "answer": 1, "response": "x"})
    results, stats = pool.score(items)
    assert results[3].error.startswith("worker died") and results[3].reward == 0.0
    _check(items, results)
    assert stats["errors"] == 1


def test_verifier_kwargs_reach_workers(pool):
    items = [{"verifier": "test-echo-kwargs", "answer": None, "response": "x",
              "verifier_kwargs": {"value": 0.25}}]
    results, _ = pool.score(items)
    assert results[0].outcome == 0.25


def test_empty_batch(pool):
    results, stats = pool.score([])
    assert results == []
    assert {k: v for k, v in stats.items() if k != "seconds"} == {"n": 0, "errors": 0, "timeouts": 0, "by_verifier": {}}


def test_score_batch_convenience_and_spawn_context():
    items = _good_items(12) + [{"verifier": "test-spin", "answer": "x", "response": "x"}]
    results, stats = score_batch(items, num_workers=1, timeout_s=1.0, start_method="spawn")
    _check(items, results)
    assert results[-1].error == TIMEOUT_ERROR
    assert stats["timeouts"] == 1


def test_in_process_mode():
    items = _good_items(6)
    results, stats = score_batch(items, num_workers=0)
    _check(items, results)
    assert stats["errors"] == 0


def test_closed_pool_refuses():
    p = VerifierPool(1)
    p.close()
    p.close()  # idempotent
    with pytest.raises(RuntimeError):
        p.score(_good_items(1))
