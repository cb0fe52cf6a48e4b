"""metrics.jsonl sink (incl. truncation on resume), real offline wandb read back (a resumed run continues the
same wandb run), and PNG plots."""

import json
import subprocess
import sys

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


def test_held_out_abstention_rates_get_their_panel(tmp_path):
    logger = MetricsLogger(tmp_path, config={"a": 1}, wandb_mode="disabled", wandb_project="t", run_name="r")
    for s in (0, 5):
        logger.log(s, {"eval/mean": 0.5, "eval/abstain_rate/unanswerable": s / 10,
                       "eval/abstain_rate/answerable": 0.0})
    logger.close()
    assert sorted(p.name for p in plot_run(tmp_path)) == ["eval_abstention.png", "eval_reward.png"]


def _wandb_records(run_dir) -> list[tuple[str, list[dict]]]:
    """(run id, records) of every offline wandb session in `run_dir`, oldest first, read back with wandb's own
    reader of its `.wandb` transaction log (`wandb leet inspect --json`: one JSON record per line)."""
    sessions = []
    for path in (run_dir / "wandb").glob("offline-run-*/run-*.wandb"):
        out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
                             capture_output=True, text=True, check=True, timeout=120).stdout
        records = [json.loads(line) for line in out.splitlines() if line.strip()]
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        sessions.append((run["start_time"], run["run_id"], records))
    return [(run_id, records) for _, run_id, records in sorted(sessions)]


def _history(records) -> list[dict]:
    """Each history record: its step and the values logged (wandb's own `_runtime` / `_timestamp` left out)."""
    return [{"step": int(r["history"]["step"].get("num", 0)),
             **{k: v for k, v in r["history"]["item"].items() if k not in ("_runtime", "_timestamp")}}
            for r in records if r["type"] == "history"]


def _wandb_logger(run_dir, **kw):
    return MetricsLogger(run_dir, config={"x": 1}, wandb_mode="offline", wandb_project="omni-rl-test",
                         run_name="t", **kw)


def test_wandb_offline_run_holds_the_logged_values(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = _wandb_logger(tmp_path)
    for s in range(3):
        logger.log(s, {"reward/mean": s / 4, "time/generate": 1.5 + s, "bad": float("nan")})
    logger.close()
    ((run_id, records),) = _wandb_records(tmp_path)
    assert run_id == (tmp_path / "wandb_run_id").read_text().strip()
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["display_name"] == "t" and run["project"] == "omni-rl-test" and "resume" not in run
    assert run["config"]["update"]["x"] == 1
    # the NaN is left out of wandb (null in metrics.jsonl); `_step` is wandb's copy of the step
    assert _history(records) == [{"step": s, "_step": s, "reward/mean": s / 4, "time/generate": 1.5 + s}
                                 for s in range(3)]


def test_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = _wandb_logger(tmp_path)
    for s in range(3):
        logger.log(s, {"reward/mean": s / 4})
    logger.close()
    logger = _wandb_logger(tmp_path, resume_step=2)  # the checkpoint covered steps 0..2
    for s in (3, 4):
        logger.log(s, {"reward/mean": s / 4})
    logger.close()
    (first_id, first), (second_id, second) = _wandb_records(tmp_path)
    assert first_id == second_id == (tmp_path / "wandb_run_id").read_text().strip()
    assert [r["run"].get("resume", False) for r in first + second if r["type"] == "run"] == [False, True]
    assert [(h["step"], h["reward/mean"]) for h in _history(first) + _history(second)] == [
        (0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)]
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3, 4]

    _wandb_logger(tmp_path).close()  # a fresh start in the same dir is another wandb run
    assert _wandb_records(tmp_path)[-1][0] != first_id


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
