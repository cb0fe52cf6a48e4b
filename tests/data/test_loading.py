import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omni_rl.data.loading import REJECT_CODES, LoadResult, derive_modality, load_samples
from omni_rl.data.synthetic import write_mp4
from omni_rl.data.types import Sample
from omni_rl.verifiers import verifier_exists

Q = {"type": "text", "text": "question"}


def _media(d: Path) -> None:
    (d / "media").mkdir()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(d / "media" / "ok.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "media" / "big.png")
    data = (d / "media" / "big.png").read_bytes()
    (d / "media" / "trunc.png").write_bytes(data[: len(data) // 2])
    (d / "media" / "garbage.png").write_bytes(b"\x00garbage bytes, not a png\xff" * 20)
    write_mp4(d / "media" / "ok.mp4", np.full((4, 16, 16, 3), 128, np.uint8))
    sf.write(d / "media" / "ok.wav", np.zeros(1600, np.float32), 16000)


def _user(*parts):
    return [{"role": "user", "content": [*parts, Q]}]


def _good_rows():
    return [
        {"id": "text", "messages": [{"role": "user", "content": "What is 1+1?"}], "verifier": "mathruler",
         "answer": "2", "source": "math", "pass_rate": 0.5, "note": "kept in extra"},
        {"id": "image", "messages": _user({"type": "image", "image": "media/ok.png"}), "verifier": "multiple-choice",
         "answer": "A", "verifier_kwargs": {"options": {"A": "red", "B": "blue"}}},
        {"id": "video", "messages": _user({"type": "video", "video": "media/ok.mp4"}), "verifier": "mathruler",
         "answer": "1"},
        {"id": "audio", "messages": _user({"type": "audio", "audio": "media/ok.wav"}), "verifier": "asr",
         "answer": "hello"},
        {"id": "omni", "messages": _user({"type": "video", "video": "media/ok.mp4"},
                                         {"type": "audio", "audio": "media/ok.wav"}),
         "verifier": "mathruler", "answer": "3"},
        {"id": "image-again", "messages": _user({"type": "image", "image": "media/ok.png"}),
         "verifier": "string-match", "answer": "unanswerable", "unanswerable": True},
    ]


BAD = [  # (row or raw line, expected reason prefix)
    ({"id": "b-missing-media", "messages": _user({"type": "image", "image": "media/nope.png"}),
      "verifier": "mathruler", "answer": "1"}, "missing_media:media/nope.png"),
    ({"id": "b-garbage", "messages": _user({"type": "image", "image": "media/garbage.png"}),
      "verifier": "mathruler", "answer": "1"}, "corrupt_media:media/garbage.png: "),
    ({"id": "b-trunc", "messages": _user({"type": "image", "image": "media/trunc.png"}),
      "verifier": "mathruler", "answer": "1"}, "corrupt_media:media/trunc.png: "),
    ({"id": "b-trunc-again", "messages": _user({"type": "image", "image": "media/trunc.png"}),
      "verifier": "mathruler", "answer": "1"}, "corrupt_media:media/trunc.png: "),
    ({"id": "b-verifier", "messages": _user(), "verifier": "no-such-verifier", "answer": "1"},
     "unknown_verifier:no-such-verifier"),
    ('{"id": "b-json", "messages": [', "malformed_json"),
    ("not json at all", "malformed_json"),
    ({"id": "b-no-answer", "messages": _user(), "verifier": "mathruler"}, "missing_field:answer"),
    ({"messages": _user(), "verifier": "mathruler", "answer": "1"}, "missing_field:id"),
    ({"id": "b-type", "messages": "hello", "verifier": "mathruler", "answer": "1"}, "bad_type:messages"),
    ({"id": "b-part", "messages": _user({"type": "image", "image": 3}), "verifier": "mathruler", "answer": "1"},
     "bad_type:messages"),
    ({"id": "b-kwargs", "messages": _user(), "verifier": "mathruler", "answer": "1", "verifier_kwargs": [1]},
     "bad_type:verifier_kwargs"),
    ({"id": "b-modality", "messages": _user(), "verifier": "mathruler", "answer": "1", "modality": "smell"},
     "bad_type:modality"),
    ({"id": "b-url", "messages": _user({"type": "image", "image": "https://x.org/a.png"}),
      "verifier": "mathruler", "answer": "1"}, "bad_type:messages"),
    ([1, 2, 3], "bad_type:row"),
    ({"id": "text", "messages": _user(), "verifier": "mathruler", "answer": "1"}, "duplicate_id"),
]


@pytest.fixture()
def bad_file(tmp_path):
    _media(tmp_path)
    lines = []
    for r in _good_rows():
        lines.append(json.dumps(r))
    for r, _ in BAD:
        lines.append(r if isinstance(r, str) else json.dumps(r))
    lines.insert(3, "")  # blank lines are not rows
    p = tmp_path / "data.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_every_row_accounted_for(bad_file, tmp_path):
    rej_path = tmp_path / "out" / "rejects.jsonl"
    res = load_samples(bad_file, known_verifiers=verifier_exists, rejects_path=rej_path)
    assert isinstance(res, LoadResult)
    n_good, n_bad = len(_good_rows()), len(BAD)
    assert res.counts["rows_in"] == n_good + n_bad
    assert res.counts["usable"] == n_good and res.counts["rejected"] == n_bad
    assert res.counts["rows_in"] == res.counts["usable"] + res.counts["rejected"]
    assert [s.id for s in res.samples] == [r["id"] for r in _good_rows()]
    got = [r["reason"] for r in res.rejects]
    for reason, (_, want) in zip(got, BAD):
        assert reason.startswith(want), (reason, want)
    assert res.counts["corrupt_media"] == 3 and res.counts["malformed_json"] == 2
    assert res.counts["missing_media"] == 1 and res.counts["unknown_verifier"] == 1
    assert res.counts["duplicate_id"] == 1 and res.counts["missing_field"] == 2
    assert sum(res.counts[c] for c in REJECT_CODES) == n_bad
    # line numbers (1-based, blank line at 4 counted) and ids
    by_id = {r["id"]: r for r in res.rejects}
    assert by_id["b-missing-media"]["line"] == n_good + 2
    malformed = [r for r in res.rejects if r["reason"].startswith("malformed_json")]
    assert [r["line"] for r in malformed] == [n_good + 7, n_good + 8]
    assert malformed[0]["row"] == '{"id": "b-json", "messages": [' and malformed[0]["id"] is None
    assert by_id["b-verifier"]["row"]["verifier"] == "no-such-verifier"
    # the rejects file holds the same records
    written = [json.loads(x) for x in rej_path.read_text().splitlines()]
    assert written == res.rejects


def test_good_samples(bad_file):
    res = load_samples(bad_file)
    s = {x.id: x for x in res.samples}
    assert all(isinstance(x, Sample) for x in res.samples)
    assert {k: v.modality for k, v in s.items()} == {"text": "text", "image": "image", "video": "video",
                                                    "audio": "audio", "omni": "omni", "image-again": "image"}
    assert s["text"].source == "math" and s["text"].pass_rate == 0.5 and s["text"].extra == {"note": "kept in extra"}
    assert s["image"].source == "default" and s["image"].verifier_kwargs == {"options": {"A": "red", "B": "blue"}}
    assert s["image-again"].unanswerable is True
    path = s["image"].messages[0]["content"][0]["image"]
    assert Path(path).is_absolute() and Path(path) == (bad_file.parent / "media" / "ok.png").resolve()
    assert Path(s["omni"].messages[0]["content"][1]["audio"]).is_file()


def test_relative_paths_resolved_from_dataset_dir_not_cwd(tmp_path, monkeypatch):
    d = tmp_path / "ds" / "sub"
    d.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(d / "x.png")
    (tmp_path / "ds" / "rows.jsonl").write_text(json.dumps(
        {"id": "1", "messages": _user({"type": "image", "image": "sub/x.png"}), "verifier": "mathruler",
         "answer": "1"}) + "\n")
    monkeypatch.chdir(tmp_path)
    res = load_samples("ds/rows.jsonl")
    assert res.counts["usable"] == 1
    assert res.samples[0].messages[0]["content"][0]["image"] == str((d / "x.png").resolve())


def test_media_decoded_once(bad_file, monkeypatch):
    import omni_rl.data.loading as loading

    calls = []
    real = loading.probe_media
    monkeypatch.setattr(loading, "probe_media", lambda p, k: (calls.append((str(p), k)), real(p, k))[1])
    load_samples(bad_file)
    assert len(calls) == len(set(calls))
    assert sum(1 for p, _ in calls if p.endswith("trunc.png")) == 1


def test_check_media_false_skips_files(bad_file):
    res = load_samples(bad_file, check_media=False)
    assert res.counts["missing_media"] == 0 and res.counts["corrupt_media"] == 0
    assert res.counts["rows_in"] == res.counts["usable"] + res.counts["rejected"]


def test_custom_known_verifiers(bad_file):
    res = load_samples(bad_file, known_verifiers=lambda name: name == "mathruler")
    assert res.counts["unknown_verifier"] == 4  # multiple-choice, asr, string-match, no-such-verifier


def _clean_rows():
    rows = _good_rows()
    # Arrow needs one type per column: content as parts everywhere, answers as strings
    rows[0]["messages"] = _user()
    rows[0].pop("note")
    for r in rows:  # datasets.Dataset.from_list infers the schema from the first row
        r.setdefault("verifier_kwargs", None)
        r.setdefault("source", None)
        r.setdefault("pass_rate", None)
        r.setdefault("unanswerable", None)
    rows[1]["verifier_kwargs"] = {"options": {"A": "red", "B": "blue"}}
    rows[0]["verifier_kwargs"] = {"options": {"A": "1", "B": "2", "C": "3"}}  # Arrow pads row 1 with C: None
    return rows


def test_parquet_round_trip(tmp_path):
    import datasets

    _media(tmp_path)
    rows = _clean_rows()
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    res = load_samples(tmp_path / "d.parquet")
    assert res.counts["usable"] == len(rows), res.rejects
    s = {x.id: x for x in res.samples}
    assert s["image"].verifier_kwargs == {"options": {"A": "red", "B": "blue"}}
    assert s["text"].verifier_kwargs == {"options": {"A": "1", "B": "2", "C": "3"}}
    assert s["video"].verifier_kwargs == {}  # Arrow's None fillers dropped
    assert s["video"].source == "default"
    assert s["omni"].modality == "omni"
    assert s["omni"].messages[0]["content"][0] == {"type": "video", "video": str(tmp_path / "media" / "ok.mp4")}
    assert s["text"].messages[0]["content"] == [Q]
    assert s["image-again"].unanswerable is True and s["text"].pass_rate == 0.5


def test_saved_dataset_round_trip(tmp_path):
    import datasets

    _media(tmp_path)
    rows = _clean_rows()
    rows.append({**rows[1], "id": "x-missing", "messages": _user({"type": "image", "image": "media/gone.png"})})
    rows.append({**rows[1], "id": "image"})  # duplicate
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "media").rename(tmp_path / "saved" / "media")  # relative to the dataset directory
    res = load_samples(tmp_path / "saved", rejects_path=tmp_path / "rej.jsonl")
    assert res.counts["usable"] == len(rows) - 2
    assert [r["reason"].split(":")[0] for r in res.rejects] == ["missing_media", "duplicate_id"]
    assert res.rejects[0]["index"] == len(rows) - 2 and res.rejects[0]["line"] is None
    # media resolved relative to the dataset directory
    assert res.samples[1].messages[0]["content"][0]["image"] == str(tmp_path / "saved" / "media" / "ok.png")
    assert len((tmp_path / "rej.jsonl").read_text().splitlines()) == 2


def test_unsupported_and_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_samples(tmp_path / "none.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported"):
        load_samples(tmp_path / "x.csv")


def test_empty_file(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    res = load_samples(tmp_path / "e.jsonl", rejects_path=tmp_path / "r.jsonl")
    assert res.counts["rows_in"] == 0 and res.samples == [] and (tmp_path / "r.jsonl").read_text() == ""


def test_unanswerable_rows_may_have_no_gold_answer(tmp_path):
    rows = [{"id": "u", "messages": _user(), "verifier": "string-match", "answer": None, "unanswerable": True},
            {"id": "a", "messages": _user(), "verifier": "string-match", "answer": None},
            {"id": "f", "messages": _user(), "verifier": "string-match", "answer": None, "unanswerable": False},
            {"id": "n", "messages": _user(), "verifier": "string-match", "unanswerable": True}]
    (tmp_path / "u.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = load_samples(tmp_path / "u.jsonl")
    assert [(s.id, s.answer, s.unanswerable) for s in res.samples] == [("u", None, True)]
    assert [r["reason"] for r in res.rejects] == ["missing_field:answer"] * 3  # the key stays required


def test_derive_modality():
    assert derive_modality([]) == "text"
    assert derive_modality(["image", "video"]) == "video"
    assert derive_modality(["audio"]) == "audio"
    assert derive_modality(["image", "audio"]) == "omni"


def test_video_with_its_own_soundtrack(tmp_path):
    """`"use_audio": true` on a video part: the file's own audio track is the row's sound (omni modality); the loader
    checks that track decodes and refuses rows the rollout engine could not pair (vLLM pairs the k-th audio with the
    k-th video: every video has it or none, no separate audio part)."""
    _media(tmp_path)
    write_mp4(tmp_path / "media" / "av.mp4", np.full((4, 16, 16, 3), 128, np.uint8),
              audio=np.zeros(16000, np.float32))
    av = {"type": "video", "video": "media/av.mp4", "use_audio": True}
    rows = [
        ({"id": "av", "messages": _user(av), "verifier": "mathruler", "answer": "2"}, None),
        ({"id": "no-track", "messages": _user({**av, "video": "media/ok.mp4"}), "verifier": "mathruler",
          "answer": "2"}, "corrupt_media:media/ok.mp4: no audio stream in ok.mp4 (its audio track"),
        ({"id": "plus-audio", "messages": _user(av, {"type": "audio", "audio": "media/ok.wav"}),
          "verifier": "mathruler", "answer": "2"}, "bad_type:messages: a row whose videos use their own audio"),
        ({"id": "half", "messages": _user(av, {"type": "video", "video": "media/ok.mp4"}), "verifier": "mathruler",
          "answer": "2"}, "bad_type:messages: 'use_audio' must be true on every video of a row or on none (1 of 2"),
        ({"id": "on-image", "messages": _user({"type": "image", "image": "media/ok.png", "use_audio": True}),
          "verifier": "mathruler", "answer": "2"}, "bad_type:messages: messages[0].content[0] 'use_audio' must be"),
        ({"id": "not-bool", "messages": _user({**av, "use_audio": "yes"}), "verifier": "mathruler", "answer": "2"},
         "bad_type:messages: messages[0].content[0] 'use_audio' must be"),
        ({"id": "off", "messages": _user({**av, "use_audio": False}), "verifier": "mathruler", "answer": "2"}, None),
    ]
    p = tmp_path / "av.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r, _ in rows))
    res = load_samples(p)
    assert res.counts["rows_in"] == 7 and res.counts["usable"] == 2 and res.counts["rejected"] == 5
    assert {s.id: s.modality for s in res.samples} == {"av": "omni", "off": "video"}
    reasons = {r["id"]: r["reason"] for r in res.rejects}
    for row, want in rows:
        if want is not None:
            assert reasons[row["id"]].startswith(want), (reasons[row["id"]], want)
