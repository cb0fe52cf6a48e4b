"""The job directory: fingerprint checks with one-line errors, overwrite, partial last lines after a kill."""

from __future__ import annotations

import json

import pytest

from omni_rl.jobs.store import JobConfigMismatch, JobDir, describe_diff, fingerprint, flatten, read_records

FP = {"filter.n": 8, "rollout.temperature": 1.0, "model.family": "omni"}


def _job(path, fp=FP, **kw):
    return JobDir(path, job="filter", fingerprint=fp, records=("scores.jsonl", "rejects.jsonl"),
                  outputs=("kept.jsonl", "plots"), **kw)


def test_fingerprint_picks_sections_and_dotted_keys():
    cfg = {"model": {"family": "omni", "path": None}, "rollout": {"n": 16, "temperature": 0.7, "num_workers": 4},
           "filter": {"n": 8, "verifier_thresholds": {}}}
    fp = fingerprint(cfg, ("model", "rollout.temperature", "filter.n", "filter.verifier_thresholds"))
    assert fp == {"model.family": "omni", "model.path": None, "rollout.temperature": 0.7, "filter.n": 8,
                  "filter.verifier_thresholds": {}}
    assert flatten({"a": {"b": {"c": 1}}, "d": []}) == {"a.b.c": 1, "d": []}


def test_same_settings_resume_and_other_settings_are_refused_naming_the_keys(tmp_path):
    job = _job(tmp_path / "out")
    job.append("scores.jsonl", {"pos": 0, "pass_rate": 0.5})
    job.close("interrupted")
    again = _job(tmp_path / "out")
    assert again.resumed and [r["pos"] for r in again.read("scores.jsonl")] == [0]
    assert [s["status"] for s in again.meta["sessions"]] == ["interrupted", "running"]
    again.close("finished")
    killed = _job(tmp_path / "out")  # a session that never closed (SIGKILL) is marked as killed
    killed.session["status"] = "running"
    killed.save_meta()
    killed._unlock()  # its process died: the kernel drops the lock, job.json still says running
    again = _job(tmp_path / "out")
    assert [s["status"] for s in again.meta["sessions"]] == ["interrupted", "finished", "killed", "running"]
    again.close("finished")
    with pytest.raises(JobConfigMismatch) as e:
        _job(tmp_path / "out", {**FP, "filter.n": 16, "rollout.temperature": 0.7})
    msg = str(e.value)
    assert "\n" not in msg
    assert "filter.n: 8 -> 16" in msg and "rollout.temperature: 1.0 -> 0.7" in msg and "filter.overwrite=true" in msg


def test_overwrite_deletes_only_the_jobs_files(tmp_path):
    out = tmp_path / "out"
    job = _job(out)
    job.append("scores.jsonl", {"pos": 0})
    job.close("finished")
    (out / "plots").mkdir()
    (out / "plots" / "pass_rate.png").write_bytes(b"x")
    (out / "kept.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")
    job = _job(out, {**FP, "filter.n": 4}, overwrite=True)
    assert not job.resumed and list(job.read("scores.jsonl")) == []
    assert sorted(p.name for p in out.iterdir()) == ["job.json", "notes.txt"]
    assert json.loads((out / "job.json").read_text())["fingerprint"]["filter.n"] == 4


def test_non_empty_foreign_dir_and_other_job_are_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    with pytest.raises(JobConfigMismatch, match="holds no filter job"):
        _job(tmp_path / "run")
    JobDir(tmp_path / "prefs", job="build-preferences", fingerprint=FP, records=("candidates.jsonl",),
           outputs=()).close("finished")
    with pytest.raises(JobConfigMismatch, match="holds a `build-preferences` job"):
        _job(tmp_path / "prefs")


def test_partial_last_line_is_dropped_and_cut_so_appends_stay_clean(tmp_path):
    job = _job(tmp_path / "out")
    for pos in range(3):
        job.append("scores.jsonl", {"pos": pos})
    job.close("killed")
    path = tmp_path / "out" / "scores.jsonl"
    whole = path.stat().st_size
    with open(path, "a") as f:
        f.write('{"pos": 3, "pass_ra')  # a SIGKILL in the middle of a write
    assert [r["pos"] for r in read_records(path)] == [0, 1, 2]
    assert path.stat().st_size > whole  # read_records alone does not touch the file
    job = _job(tmp_path / "out")
    assert [r["pos"] for r in job.read("scores.jsonl")] == [0, 1, 2]
    assert path.stat().st_size == whole
    job.append("scores.jsonl", {"pos": 3})
    assert [r["pos"] for r in job.read("scores.jsonl")] == [0, 1, 2, 3]


def test_describe_diff_limits_its_length():
    old = {f"k{i}": i for i in range(10)}
    new = {f"k{i}": i + 1 for i in range(10)}
    text = describe_diff(old, new, limit=3)
    assert text.startswith("k0: 0 -> 1; k1: 1 -> 2; k2: 2 -> 3") and text.endswith("and 7 more")
    assert describe_diff({"a": 1}, {"b": 2}) == "a: 1 -> '(unset)'; b: '(unset)' -> 2"


def test_abandon_leaves_a_fresh_dir_as_if_never_started(tmp_path):
    job = _job(tmp_path / "out")
    job.abandon()  # e.g. the model path did not exist: nothing was recorded
    assert not (tmp_path / "out").exists()
    _job(tmp_path / "out", {**FP, "filter.n": 4}).close("finished")  # the corrected command is not refused
    job = _job(tmp_path / "out", {**FP, "filter.n": 4})
    job.append("scores.jsonl", {"pos": 0})
    job.abandon()  # records exist: kept, the session marked failed
    meta = json.loads((tmp_path / "out" / "job.json").read_text())
    assert [s["status"] for s in meta["sessions"]] == ["finished", "failed"]


def _hold_in_child(path, ready, release):
    job = _job(path)
    ready.set()
    release.wait(30)
    job.close("finished")


def test_second_job_on_a_running_dir_is_refused_and_a_dead_holder_frees_it(tmp_path):
    import multiprocessing as mp

    from omni_rl.jobs.store import JobBusy

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_in_child, args=(tmp_path / "j", ready, release))
    child.start()
    try:
        assert ready.wait(60)
        with pytest.raises(JobBusy, match="in use by another running process.*re-running the same command"):
            _job(tmp_path / "j")
        assert json.loads((tmp_path / "j" / "job.json").read_text())["sessions"][-1]["status"] == "running"
    finally:
        child.kill()  # dies holding the lock, as a SIGKILLed job does: the kernel releases it
        child.join(30)
    job = _job(tmp_path / "j")  # no stale lock; the dead session is recorded as killed
    assert [s["status"] for s in job.meta["sessions"]] == ["killed", "running"]
    job.close("finished")
    _job(tmp_path / "j").close("finished")  # close() released it in this process too


def test_refused_start_releases_the_lock_and_leaves_no_dir(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(JobConfigMismatch, match="not empty"):
        _job(tmp_path / "other")
    _job(tmp_path / "other", overwrite=True).close("finished")  # not locked by the refused attempt
    with pytest.raises(JobConfigMismatch, match="other settings"):
        _job(tmp_path / "other", fp={"model.path": "elsewhere"})
    assert not (tmp_path / "absent").exists()
    job = _job(tmp_path / "absent")
    job.abandon()
    assert not (tmp_path / "absent").exists()


def test_waiting_lock_serialises_two_holders(tmp_path):
    import threading
    import time

    from omni_rl.locks import waiting_lock

    order = []

    def second():
        with waiting_lock(tmp_path / ".l"):  # separate open() -> separate flock, even in one process
            order.append("second")

    with waiting_lock(tmp_path / ".l"):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first")
    t.join(10)
    assert order == ["first", "second"]
