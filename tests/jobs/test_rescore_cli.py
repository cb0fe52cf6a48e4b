"""`omni-rl filter filter.rescore_only=true` end to end through the real CLI (no generation): banding of rows that
carry a pass rate, every bad row rejected with its reason, the accounting identity, media paths valid from the
output dir, re-banding the same output dir with other bands, and the one-line refusal of other settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _row(rid, pass_rate=None, verifier="string-match", image=None, source="shapes"):
    content = [{"type": "text", "text": f"question {rid}"}]
    if image:
        content.insert(0, {"type": "image", "image": image})
    row = {"id": rid, "source": source, "messages": [{"role": "user", "content": content}], "verifier": verifier,
           "answer": "red"}
    if pass_rate is not None:
        row["pass_rate"] = pass_rate
    return json.dumps(row)


def _filter(out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", "filter", f"data.path={data}",
                           "filter.rescore_only=true", "logging.progress=false", f"run.output_dir={out}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rescore_bands_rows_and_accounts_for_every_one(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "media").mkdir(parents=True)
    (data_dir / "media" / "r1.png").write_bytes(b"not decoded when rescoring")
    lines = [_row("r0", 0.0), _row("r1", 0.75, image="media/r1.png"), _row("r2", 0.875), _row("r3", 1.0),
             _row("r4"), "{not json", _row("r5", 0.5, verifier="no-such-verifier"), _row("r1", 0.5),
             _row("a0", 0.25, source="speech")]
    data = data_dir / "rows.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"

    p = _filter(out, data, "filter.band_preset=image_rl")
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    t = report["totals"]
    assert (t["rows_in"], t["kept"], t["too_easy"], t["too_hard"], t["rejected"]) == (9, 3, 2, 0, 4)
    assert t["rows_in"] == t["kept"] + t["filtered_out"] + t["rejected"] and t["pending"] == 0
    assert "rows in 9 = kept 3 + filtered out 2" in p.stdout
    assert report["by_source"]["shapes"]["kept"] == 2 and report["by_source"]["speech"]["kept"] == 1
    assert report["by_source"]["shapes"]["mean_pass_rate"] == round((0.0 + 0.75 + 0.875 + 1.0) / 4, 4)
    assert report["by_source"]["shapes"]["mean_score"] is None  # re-banded rows carry no sampled scores
    reasons = {r["line"]: r["reason"].split(":")[0] for r in _lines(out / "rejects.jsonl")}
    assert reasons == {5: "no_pass_rate", 6: "malformed_json", 7: "unknown_verifier", 8: "duplicate_id"}
    kept = _lines(out / "kept.jsonl")
    assert [r["id"] for r in kept] == ["r0", "r1", "a0"] and [r["pass_rate"] for r in kept] == [0.0, 0.75, 0.25]
    image = kept[1]["messages"][0]["content"][0]["image"]
    assert (out / image).resolve() == (data_dir / "media" / "r1.png").resolve()
    assert kept[0] == json.loads(lines[0])  # unchanged (its pass_rate is the one it came with)
    assert (out / "plots" / "pass_rate.png").read_bytes()[:4] == b"\x89PNG"
    assert "rows_in 9 = kept 3 + filtered_out 2 + rejected 4" in (out / "report.md").read_text()

    # other bands on the same dir: re-banded from the records, nothing regenerated or duplicated
    p = _filter(out, data, "filter.band_preset=keep_all", "filter.bands=[{source:[speech],low:0.5,high:1.0}]")
    assert p.returncode == 0, p.stderr[-3000:]
    t = json.loads((out / "report.json").read_text())["totals"]
    assert (t["kept"], t["too_hard"], t["too_easy"], t["rejected"]) == (4, 1, 0, 4)
    assert [r["id"] for r in _lines(out / "kept.jsonl")] == ["r0", "r1", "r2", "r3"]
    assert len(_lines(out / "scores.jsonl")) == 5 and len(_lines(out / "rejects.jsonl")) == 4

    # settings that change the scores are refused in one line naming the key
    p = _filter(out, data, "filter.n=16")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "filter.n: 8 -> 16" in p.stderr and "filter.overwrite=true" in p.stderr
