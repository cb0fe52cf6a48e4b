"""scripts/bench_filter.py: its ratios, score comparison, memory rows and printed summary, on hand-made figures."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_filter", ROOT / "scripts" / "bench_filter.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass resolves annotations through the module
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_ratio_and_format(bench):
    assert bench.ratio(3.0, 2.0) == 1.5
    assert bench.ratio(1.0, 0.0) is None and bench.ratio(None, 2.0) is None and bench.ratio(2.0, None) is None
    assert bench.fmt(None) == "n/a" and bench.fmt(1.23456, ".3f", "x") == "1.235x"


def test_parse_skip(bench):
    assert bench.parse_skip("") == set()
    assert bench.parse_skip("memory, workers,") == {"memory", "workers"}
    with pytest.raises(ValueError, match="speed"):
        bench.parse_skip("memory,speed")


def test_overhead_workers_memory_resume_figures(bench):
    o = bench.overhead_figures(filter_pps=8.0, bare_pps=9.0)  # bare / filter = 9 / 8
    assert o["overhead"] == pytest.approx(1.125) and o["meets_goal"] is True
    assert bench.overhead_figures(8.0, 10.0)["meets_goal"] is False  # 1.25 > 1.15
    assert bench.overhead_figures(None, 10.0)["meets_goal"] is None
    assert bench.workers_figures(8.0, 6.0)["speedup"] == pytest.approx(0.75)
    m = bench.memory_figures(1000, 500.0, 10000, 509.0)
    assert m["ratio"] == pytest.approx(1.018)
    assert m["mib_per_1k_rows"] == pytest.approx(1.0)  # 9 MiB over 9,000 extra rows
    assert bench.memory_figures(1000, None, 10000, 509.0)["mib_per_1k_rows"] is None
    r = bench.resume_figures(100.0, 60.0, 70.0, 40.0, 45.0)
    assert r["ratio"] == pytest.approx(1.3) and r["extra_s"] == pytest.approx(30.0)


def test_compare_scores(bench):
    full = [{"id": "a", "pass_rate": 0.5, "scores": [1.0, 0.0]}, {"id": "b", "pass_rate": 1.0, "scores": [1.0, 1.0]}]
    same = list(reversed(full))  # another line order: still identical
    c = bench.compare_scores(full, same)
    assert c["identical"] and c["records_full"] == c["records_resumed"] == 2
    other = [{"id": "b", "pass_rate": 0.5, "scores": [1.0, 0.0]}, {"id": "b", "pass_rate": 0.5, "scores": [1.0, 0.0]},
             {"id": "c", "pass_rate": 0.0, "scores": [0.0, 0.0]}]
    c = bench.compare_scores(full, other)
    assert not c["identical"]
    assert (c["duplicates_resumed"], c["only_in_full"], c["only_in_resumed"]) == (1, 1, 1)
    assert c["pass_rate_mismatches"] == 1 and c["score_mismatches"] == 1  # b: 1.0 vs 0.5


def test_text_rows_and_command(bench, tmp_path):
    assert bench.text_row(1)["answer"] == "25"  # 7 + 18
    assert bench.text_row(3)["answer"] == "2"  # (21 % 21) + (44 % 21)
    assert "What is 7 + 18?" in bench.text_row(1)["messages"][0]["content"]
    path = bench.write_text_rows(tmp_path / "rows.jsonl", 5)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["t0", "t1", "t2", "t3", "t4"] and bench.count_lines(path) == 5
    cmd = bench.filter_cmd(["stage=text_rl_1", "filter.n=2"], tmp_path / "run")
    assert cmd[:4] == [sys.executable, "-m", "omni_rl.cli", "filter"]
    assert cmd[4:] == ["stage=text_rl_1", "filter.n=2", "logging.progress=false", "logging.wandb_mode=disabled",
                       f"run.output_dir={tmp_path / 'run'}"]


def test_peak_rss_of_this_process(bench):
    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc")
    assert bench.peak_rss_mib(os.getpid()) > 1.0


def test_report_lines(bench):
    same = [{"id": "a", "pass_rate": 0.5}]
    fig = {"overhead": {**bench.overhead_figures(8.0, 9.0), "bare_render_s": 0.5, "bare_generate_s": 28.4,
                        "bare_score_s": 3.0},
           "workers": bench.workers_figures(8.0, 6.0),
           "memory": bench.memory_figures(1000, 500.0, 10000, 509.0),
           "resume": {**bench.resume_figures(100.0, 60.0, 70.0, 40.0, 45.0),
                      "compare": bench.compare_scores(same, same)}}
    text = "\n".join(bench.report_lines(fig))
    for part in ("bare/filter 1.125x (goal <= 1.15x) ok", "generation 28.40 s", "-> x0.750",
                 "1,000 rows 500 MiB, 10,000 rows 509 MiB -> x1.018 (+1.0 MiB per 1k rows",
                 "(60.0 + 70.0) s / 100.0 s", "-> x1.300 (extra +30.0 s", "full 40.0 s, resumed 45.0 s", "IDENTICAL"):
        assert part in text, part
    assert bench.report_lines({"workers": bench.workers_figures(None, 6.0)}) == [
        "2 rollout workers vs 1 6.00 vs n/a prompts/s -> xn/a"]
