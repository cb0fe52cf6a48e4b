"""metrics.jsonl sink (incl. truncation on resume), real offline wandb, and PNG plots."""

import json

from omni_rl.logging.metrics import MetricsLogger, read_metrics
from omni_rl.logging.plots import plot_run


def _log_steps(run_dir, steps, **kw):
    logger = MetricsLogger(run_dir, config={"a": 1}, wandb_mode="disabled", wandb_project="t", run_name="r", **kw)
    for s in steps:
        logger.log(s, {"reward/mean": s / 10, "reward/source/x": 0.5, "time/generate": 1.0,
                       "train/clip_frac_low": 0.0, "train/logprob_abs_diff_mean": 1e-7, "bad": float("nan")})
    logger.close()


def test_jsonl_rows_and_nan_become_null(tmp_path):
    _log_steps(tmp_path, range(3))
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[2]["reward/mean"] == 0.2 and rows[0]["bad"] is None


def test_resume_truncates_to_checkpointed_step(tmp_path):
    _log_steps(tmp_path, range(5))
    _log_steps(tmp_path, [3, 4], resume_step=2)  # checkpoint covered steps 0..2; steps 3, 4 are redone
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3, 4]


def test_fresh_run_starts_a_new_file(tmp_path):
    _log_steps(tmp_path, range(5))
    _log_steps(tmp_path, range(2))
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1]


def test_plots_written_as_png(tmp_path):
    _log_steps(tmp_path, range(4))
    paths = plot_run(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["clip_fraction.png", "logprob_mismatch.png", "reward.png",
                     "reward_by_source.png", "step_time.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wandb_offline_run_writes_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = MetricsLogger(tmp_path, config={"x": 1}, wandb_mode="offline", wandb_project="omni-rl-test",
                           run_name="t")
    logger.log(0, {"reward/mean": 0.5})
    logger.close()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "wandb offline run dir missing"


def test_trailing_mean_by_hand():
    from omni_rl.logging.plots import trailing_mean

    assert trailing_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert trailing_mean([2.0, 4.0, 9.0], 5) == [2.0, 3.0, 5.0]


def test_pass_rate_histogram_counts_each_rate_once(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from omni_rl.logging.plots import plot_pass_rates

    rates = {"image": [0.0, 0.125, 0.125, 1.0], "audio": [0.5]}
    path = plot_pass_rates(tmp_path / "plots" / "pass_rate.png", rates, {"image": [(0.0, 0.8, "image_rl")]}, n=8)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the bins are centred on k/8: every rate falls inside exactly one bin, away from its edges
    edges = [(k - 0.5) / 8 for k in range(10)]
    for r in rates["image"]:
        assert sum(lo < r < hi for lo, hi in zip(edges, edges[1:])) == 1
