"""scripts/bench_train.py: the learning figures of one run and the sweep's min / median / max, on hand-made rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "scripts" / "bench_train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows():
    # 9 steps; reward 0.1 .. 0.9; source "a" on every step (0.0 .. 0.8), "b" only on odd steps (1.0 each);
    # held-out eval at steps 0, 4, 8 (0.2, 0.5, 0.7; source a: 0.0 -> 0.6)
    rows = []
    for s in range(9):
        r = {"step": s, "reward/mean": (s + 1) / 10, "reward/source/a": s / 10}
        if s % 2:
            r["reward/source/b"] = 1.0
        if s in (0, 4, 8):
            r.update({"eval/mean": {0: 0.2, 4: 0.5, 8: 0.7}[s], "eval/source/a": {0: 0.0, 4: 0.3, 8: 0.6}[s]})
        rows.append(r)
    return rows


def test_figures_by_hand(bench):
    f = bench.figures(_rows(), window=2)
    # window 2 (<= 9 // 3): reward first (0.1 + 0.2) / 2 = 0.15, last (0.8 + 0.9) / 2 = 0.85
    assert f["reward start"] == pytest.approx(0.15) and f["reward end"] == pytest.approx(0.85)
    assert f["reward rise"] == pytest.approx(0.7)
    assert f["reward/a rise"] == pytest.approx(0.75 - 0.05)
    # source b appears 4 times: window min(2, 4 // 3 = 1) = 1 -> 1.0 - 1.0
    assert f["reward/b rise"] == pytest.approx(0.0)
    assert f["held-out rise"] == pytest.approx(0.5) and f["held-out/a rise"] == pytest.approx(0.6)


def test_sweep_summary(bench):
    table = bench.summarise([{"x": 0.3, "y": 1.0}, {"x": 0.1, "y": 2.0}, {"x": 0.2}])
    assert table == {"x": {"min": 0.1, "median": 0.2, "max": 0.3}}  # "y" is not in every run: left out
