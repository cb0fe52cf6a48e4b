"""Column mappings, CSV / TSV sources and presets of `omni-rl convert`: each fixture is written here in a published
layout (column names as the datasets ship them), with tiny real media files; rows are compared exactly
(hand-computed), every record is converted or rejected with its reason, and the output loads with zero rejects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_convert_adapters import loads_clean, png, read_jsonl, run, user, wav, write_jsonl

from omni_rl.data.synthetic import write_mp4
from omni_rl.environments.convert import convert, summary
from omni_rl.environments.mapping import Mapping, from_args, load_mapping
from omni_rl.environments.records import iter_records, source_columns
from omni_rl.verifiers import get_verifier

MCQ_TAIL = "Answer with the option's letter."
NEXTQA_HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4"


def mp4(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.full((4, 16, 16, 3), 90, np.uint8))
    return path


def mcq_text(question: str, options: list[str]) -> str:
    lines = "\n".join(f"{'ABCDEFGH'[i]}. {o}" for i, o in enumerate(options))
    return f"{question}\n{lines}\n{MCQ_TAIL}"


# ------------------------------------------------------------------------------------------------ CSV / TSV read
def test_csv_and_tsv_records_are_strings_with_empty_cells_null(tmp_path):
    src = tmp_path / "qa.csv"
    src.write_text('vid,question,a0,a1,answer\n7,"what is it,\nreally",x,,0\n\n8,q,y\n9,"ok",z,w,1\n')
    recs = list(iter_records(src))
    assert [(r.index, r.line, r.error, r.error_code) for r in recs] == [
        (0, 2, None, "malformed_json"), (1, 5, "3 cells for the 5 columns of the header", "malformed_csv"),
        (2, 6, None, "malformed_json")]
    assert recs[0].record == {"vid": "7", "question": "what is it,\nreally", "a0": "x", "a1": None, "answer": "0"}
    assert recs[1].record == ["8", "q", "y"]
    assert source_columns(src) == ["vid", "question", "a0", "a1", "answer"]
    tsv = tmp_path / "qa.tsv"
    tsv.write_text("a\tb\n1\tx, y\n")
    assert [r.record for r in iter_records(tsv)] == [{"a": "1", "b": "x, y"}]
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    with pytest.raises(ValueError, match="one distinct, non-empty name per column"):
        list(iter_records(tmp_path / "dup.csv"))
    assert source_columns(tmp_path / "x.json") is None


# ------------------------------------------------------------------------------------------ flags on a CSV layout
def test_video_csv_options_in_columns_with_1_based_integer_answers(tmp_path):
    """A video QA CSV with the clip id in `vid`, options in a0..a4 and 1-based answer indices."""
    tmp_path = tmp_path.resolve()
    mp4(tmp_path / "media" / "clips" / "v1.mp4")
    src = tmp_path / "qa.csv"
    src.write_text("vid,question,a0,a1,a2,a3,a4,answer\n"
                   "v1,What moves?,a dot,a square,nothing,a line,a cat,1\n"  # 1 -> A
                   "v1,Which colour?,red,green,blue,grey,white,5\n"  # 5 -> E
                   "v1,Q?,x,y,z,w,v,0\n"  # 0 is below 1
                   "v1,Q?,x,y,z,w,v,6\n"  # 6 > 5 options
                   "v1,Three options?,x,y,z,,,C\n"  # a letter; empty trailing columns dropped
                   "v1,Q?,,,,,,1\n"
                   "v1,Q?,x,,z,,,1\n"
                   "v2,Q?,x,y,z,w,v,1\n"
                   ",Q?,x,y,z,w,v,1\n")
    out = tmp_path / "out" / "video.jsonl"
    mapping = from_args(["video=vid", "options=a?"], answer_index=1, media_template="clips/{}.mp4")
    res, rows, reasons = run("video_mcq", src, out, media_root=tmp_path / "media", mapping=mapping)

    assert reasons == {
        2: "bad_answer: index 0 is out of range for 5 options (indices are 1-based)",
        3: "bad_answer: index 6 is out of range for 5 options (indices are 1-based)",
        5: "bad_field:a0,a1,a2,a3,a4: every option column is empty",
        6: "bad_field:a1: empty option before a filled one (options a0, a1, a2, a3, a4)",
        7: f"missing_media:{tmp_path / 'media' / 'clips' / 'v2.mp4'}",
        8: "missing_field:video/video_path (from column vid)",
    }
    part = [{"type": "video", "video": "../media/clips/v1.mp4"}]
    assert rows[0] == {
        "id": "video_mcq-000000", "source": "video_mcq", "verifier": "multiple-choice", "answer": "A",
        "verifier_kwargs": {"options": {"A": "a dot", "B": "a square", "C": "nothing", "D": "a line", "E": "a cat"}},
        "messages": user(part, mcq_text("What moves?", ["a dot", "a square", "nothing", "a line", "a cat"]))}
    assert [(r["id"], r["answer"], r["verifier_kwargs"]["options"]) for r in rows[1:]] == [
        ("video_mcq-000001", "E", {"A": "red", "B": "green", "C": "blue", "D": "grey", "E": "white"}),
        ("video_mcq-000004", "C", {"A": "x", "B": "y", "C": "z"})]
    assert res.counts["bad_answer"] == 2 and res.counts["bad_field"] == 2
    loads_clean(out, 3)

    # the same digit answers without --answer-index are neither letters nor option texts: the reason says what to do
    _, _, reasons0 = run("video_mcq", src, tmp_path / "v0.jsonl", media_root=tmp_path / "media",
                         mapping=from_args(["video=vid", "options=a0,a1,a2,a3,a4"], media_template="clips/{}.mp4"))
    assert reasons0[0] == ("bad_answer: '1' is neither an option letter (A-E) nor the text of an option (a column of "
                           "option indices needs --answer-index 0 or 1)")


def test_gui_csv_with_the_box_over_four_corner_columns(tmp_path):
    """x1, y1, x2, y2 in their own columns (the other convention than ScreenSpot-v2's [x, y, w, h])."""
    tmp_path = tmp_path.resolve()
    png(tmp_path / "shots" / "web_1.png", (200, 100))
    src = tmp_path / "gui.tsv"
    src.write_text("shot\ttask\tx1\ty1\tx2\ty2\n"
                   "web_1.png\topen the menu\t20\t10\t60\t50\n"  # / (200, 100) -> [100, 100, 300, 500]
                   "web_1.png\tclose\t20\t10\t\t50\n"
                   "web_1.png\tsave\t20\t10\t10\t50\n")
    out = tmp_path / "gui.jsonl"
    mapping = from_args(["image=shot", "instruction=task", "bbox=x1,y1,x2,y2"], bbox_format="xyxy")
    _, rows, reasons = run("screenspot", src, out, media_root=tmp_path / "shots", mapping=mapping)
    assert reasons == {1: "bad_field:bbox: expected 4 finite numbers, got [20, 10, None, 50] (from columns x1, y1, x2, "
                          "y2)",
                       2: "bad_bbox: bbox [20, 10, 10, 50] read as xyxy pixels has no area"}
    assert [(r["id"], r["answer"]) for r in rows] == [("screenspot-000000", [100, 100, 300, 500])]
    assert rows[0]["messages"][0]["content"][0] == {"type": "image", "image": "shots/web_1.png"}
    sample = loads_clean(out, 1)[0]
    assert get_verifier("gui-coordinate")("\\boxed{(200, 300)}", sample.answer, **sample.verifier_kwargs) == 1.0


def test_audio_json_with_the_clip_path_in_audio_id(tmp_path):
    tmp_path = tmp_path.resolve()
    wav(tmp_path / "clips" / "rain.wav")
    src = tmp_path / "aqa.json"
    src.write_text(json.dumps([
        {"audio_id": "rain.wav", "question": "What is the weather?", "answer": "rainy"},
        {"audio": "rain.wav", "question": "Q", "answer": "x"},
        {"audio_id": "gone.wav", "question": "Q", "answer": "x"},
    ]))
    out = tmp_path / "aqa.jsonl"
    _, rows, reasons = run("audio_qa", src, out, media_root=tmp_path / "clips", mapping=from_args(["audio=audio_id"]))
    assert reasons == {
        1: "missing_field:audio_id: no column 'audio_id' (mapped to audio); the record's columns: audio, question, "
           "answer",
        2: f"missing_media:{tmp_path / 'clips' / 'gone.wav'}",
    }
    assert rows == [{"id": "audio_qa-000000", "source": "audio_qa", "verifier": "string-match", "answer": "rainy",
                     "messages": user([{"type": "audio", "audio": "clips/rain.wav"}], "What is the weather?")}]
    loads_clean(out, 1)


def test_template_fills_each_path_of_a_list_and_id_joins_columns(tmp_path):
    tmp_path = tmp_path.resolve()
    png(tmp_path / "imgs" / "a.png")
    png(tmp_path / "imgs" / "b.png")
    src = write_jsonl(tmp_path / "prefs.jsonl", [
        {"set": "geo", "n": 1, "imgs": ["a", "b"], "q": "Image-1: <image> Image-2: <image> Which?", "good": "A.",
         "bad": "B."},
        {"set": "geo", "n": " ", "imgs": ["a"], "q": "<image> Q", "good": "x", "bad": "y"},
        {"set": "geo", "n": 3, "imgs": [{"bytes": None}], "q": "<image> Q", "good": "x", "bad": "y"},
    ])
    mapping = from_args(["image=imgs", "question=q", "chosen=good", "rejected=bad", "id=set,n"],
                        media_template="imgs/{}.png")
    _, rows, reasons = run("mmpr", src, tmp_path / "pairs.jsonl", mapping=mapping)
    assert reasons == {1: "bad_field:n: an id part must be a non-empty string or an integer, got ' '",
                       2: "bad_field:imgs: --media-template needs a string or integer id, got dict"}
    assert rows[0]["id"] == "geo_1" and rows[0]["prompt"]["id"] == "geo_1"
    assert rows[0]["prompt"]["messages"][0]["content"] == [
        {"type": "text", "text": "Image-1:"}, {"type": "image", "image": "imgs/a.png"},
        {"type": "text", "text": "Image-2:"}, {"type": "image", "image": "imgs/b.png"},
        {"type": "text", "text": "Which?"}]


def test_csv_that_is_not_utf8_is_a_clear_error(tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes("question,answer\nqu\u00e9 ?,oui\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text .*; re-encode it as UTF-8"):
        convert("clevr", src, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.rejects.jsonl").exists()


# ------------------------------------------------------------------------------------------------ bad mappings
def test_unknown_roles_missing_columns_and_bad_settings_name_what_exists(tmp_path):
    src = tmp_path / "qa.csv"
    src.write_text("vid,question,a0,a1,answer\nv,q,x,y,0\n")
    out = tmp_path / "o.jsonl"

    def fails(mapping: Mapping, match: str, adapter: str = "video_mcq") -> None:
        with pytest.raises(ValueError, match=match):
            convert(adapter, src, out, mapping=mapping)

    fails(from_args(["clip=vid"]), r"adapter video_mcq has no role 'clip'; its roles: id, video, question, options, "
          r"answer")
    fails(from_args(["video=videoID"]), r"column 'videoID' \(mapped to video\) is not in the source; its columns: vid, "
          r"question, a0, a1, answer")
    fails(from_args(["options=b?"]), r"column 'b\?' \(mapped to options\) is not in the source")
    fails(from_args(["question=question,vid"]), "role question takes one column")
    fails(from_args(["video=vid"], media_template="{}.mp4{}"), "exactly one {}")
    fails(from_args(["video=vid"], media_template="{0}.mp4"), "exactly one {}")
    fails(from_args(["video=vid"], media_template="clips/**/{}.mp4"), r"\*\* may only start it")
    fails(from_args(["video=vid"], media_template="**/clips/{}.mp4"), r"\*\* may only start it")
    fails(from_args([], answer_index=0), "adapter screenspot has no options", adapter="screenspot")
    with pytest.raises(ValueError, match="--field takes ROLE=COLUMN"):
        from_args(["video"])
    with pytest.raises(ValueError, match="--field video given more than once"):
        from_args(["video=a", "video=b"])
    assert not out.exists()


def test_mapping_file_is_the_same_as_flags_and_flags_override_it(tmp_path):
    f = tmp_path / "layout.yaml"
    f.write_text("fields:\n  video: vid\n  options: [a0, a1, a2]\n  id: video,qid\n"
                 "media_template: '{}.mp4'\nanswer_index: 1\n")
    assert load_mapping(f) == Mapping(fields={"video": ("vid",), "options": ("a0", "a1", "a2"), "id": ("video", "qid")},
                                      media_template="{}.mp4", answer_index=1)
    assert from_args(["video=vid", "options=a0,a1,a2", "id=video,qid"], media_template="{}.mp4",
                     answer_index=1) == load_mapping(f)
    both = from_args(["video=clip"], answer_index=0, mapping_file=f)
    assert (both.fields["video"], both.fields["options"], both.answer_index, both.media_template) == (
        ("clip",), ("a0", "a1", "a2"), 0, "{}.mp4")
    (tmp_path / "bad.yaml").write_text("feilds:\n  video: vid\n")
    with pytest.raises(ValueError, match="unknown key\\(s\\) feilds; known: fields, media_template, answer_index"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("answer_index: 2\n")
    with pytest.raises(ValueError, match="answer_index must be 0 or 1, got 2"):
        load_mapping(tmp_path / "bad2.yaml")


# ------------------------------------------------------------------------------------------------------ presets
def test_nextqa_csv_preset(tmp_path):
    tmp_path = tmp_path.resolve()
    mp4(tmp_path / "NExTVideo" / "1164" / "4010069381.mp4")  # NExT-QA's folders: NExTVideo/<folder>/<video>.mp4
    mp4(tmp_path / "NExTVideo" / "0000" / "5555.mp4")
    mp4(tmp_path / "NExTVideo" / "0001" / "5555.mp4")
    src = tmp_path / "nextqa" / "val.csv"
    src.parent.mkdir()
    src.write_text(NEXTQA_HEADER + "\n" + "\n".join([
        "4010069381,369,640,480,how do the two man play the instrument,0,6,CH,roll the handle,tap their feet,"
        "strum the string,hit with sticks,pat with hand",
        '4010069381,369,640,480,"why is the man smiling, at the end",4,7,CW,happy,sad,bored,tired,the song ends',
        "4010069381,369,640,480,what is next,5,8,TN,a,b,c,d,e",
        "4010069381,369,640,480,q,1,9,CH,,,,,",
        "9999999999,369,640,480,q,0,0,CH,x,y,z,w,v",
        "4010069381,369,640,480,q,0,6,CH,x,y,z,w,v",
        "4010069381,369,640,480,q,0,11,CH,x,y,z",
        "5555,369,640,480,q,0,0,CH,x,y,z,w,v",
    ]) + "\n")
    out = tmp_path / "data" / "nextqa.jsonl"
    res, rows, reasons = run("nextqa_csv", src, out, media_root=tmp_path / "NExTVideo")

    assert reasons == {
        2: "bad_answer: index 5 is out of range for 5 options (indices are 0-based)",
        3: "bad_field:a0,a1,a2,a3,a4: every option column is empty",
        4: f"missing_media:{tmp_path / 'NExTVideo' / '**' / '9999999999.mp4'}",
        5: "duplicate_id: '4010069381_6' already used by record 0",
        6: "malformed_csv: 11 cells for the 13 columns of the header",
        7: "bad_field:video: 5555.mp4 is in 2 folders below the media root (0000/5555.mp4, 0001/5555.mp4); give the "
           "folder in --media-template or --media-root",
    }
    (rej,) = [r for r in read_jsonl(res.rejects_path) if r["index"] == 6]
    assert rej["line"] == 8
    assert summary("nextqa_csv", res).splitlines()[:2] == [
        "records_in 8 = converted 2 + rejected 6 (bad_answer 1, bad_field 2, duplicate_id 1, malformed_csv 1, "
        "missing_media 1)", f"rows: {out}"]
    part = [{"type": "video", "video": "../NExTVideo/1164/4010069381.mp4"}]
    opts = ["roll the handle", "tap their feet", "strum the string", "hit with sticks", "pat with hand"]
    assert rows[0] == {
        "id": "4010069381_6", "source": "nextqa_csv", "verifier": "multiple-choice", "answer": "A",
        "verifier_kwargs": {"options": dict(zip("ABCDE", opts))},
        "messages": user(part, mcq_text("how do the two man play the instrument", opts))}
    assert (rows[1]["id"], rows[1]["answer"]) == ("4010069381_7", "E")
    assert rows[1]["messages"][0]["content"][1]["text"].startswith("why is the man smiling, at the end\nA. happy\n")
    samples = loads_clean(out, 2)
    mc = get_verifier("multiple-choice")
    assert mc("<think>.</think> \\boxed{E}", samples[1].answer, **samples[1].verifier_kwargs) == 1.0
    assert mc("<think>.</think> \\boxed{A}", samples[1].answer, **samples[1].verifier_kwargs) == 0.0

    with pytest.raises(ValueError, match="column 'qid' \\(mapped to id\\) is not in the source; its columns: video, "
                                         "question, answer, a0"):
        src2 = tmp_path / "other.csv"
        src2.write_text("video,question,answer,a0,a1,a2,a3,a4\n")
        convert("nextqa_csv", src2, tmp_path / "o.jsonl")


def test_videomme_parquet_preset_and_the_same_by_flags(tmp_path):
    import datasets

    tmp_path = tmp_path.resolve()
    mp4(tmp_path / "videos" / "fFjv93ACGo8.mp4")
    opts = ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are equally common."]
    base = {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
            "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "task_type": "Counting Problem",
            "question": "Which is the most common?", "options": opts}
    datasets.Dataset.from_list([
        {**base, "videoID": "fFjv93ACGo8", "question_id": "001-1", "answer": "C"},
        {**base, "videoID": "notDownloaded", "question_id": "001-2", "answer": "A"},
        {**base, "videoID": "fFjv93ACGo8", "question_id": "001-3", "answer": "E"},
    ]).to_parquet(str(tmp_path / "test-00000-of-00001.parquet"))
    src = tmp_path / "test-00000-of-00001.parquet"
    out = tmp_path / "vmme.jsonl"
    _, rows, reasons = run("videomme_parquet", src, out, media_root=tmp_path / "videos")

    assert reasons == {1: f"missing_media:{tmp_path / 'videos' / 'notDownloaded.mp4'}",
                       2: "bad_answer: letter E is not one of the options A-D"}
    texts = ["Apples.", "Candles.", "Berries.", "The three kinds are equally common."]
    assert rows == [{
        "id": "001-1", "source": "videomme_parquet", "verifier": "multiple-choice", "answer": "C",
        "verifier_kwargs": {"options": dict(zip("ABCD", texts))},
        "messages": user([{"type": "video", "video": "videos/fFjv93ACGo8.mp4"}],
                         mcq_text("Which is the most common?", texts))}]
    loads_clean(out, 1)

    _, by_flags, _ = run("video_mcq", src, tmp_path / "flags.jsonl", media_root=tmp_path / "videos", source="vmme",
                         mapping=from_args(["video=videoID"], media_template="{}.mp4"))
    assert by_flags == [{**rows[0], "source": "vmme", "messages": [
        {"role": "user", "content": [{"type": "video", "video": "videos/fFjv93ACGo8.mp4"},
                                     rows[0]["messages"][0]["content"][1]]}]}]


def test_mmau_json_preset(tmp_path):
    tmp_path = tmp_path.resolve()
    wav(tmp_path / "MMAU" / "test-mini-audios" / "3fe6.wav")
    src = tmp_path / "MMAU" / "mmau_test_mini.json"
    meta = {"dataset": "AudioSet", "task": "sound", "split": "test-mini", "category": "Reasoning"}
    src.write_text(json.dumps([
        {"id": "3fe6", "audio_id": "./test-mini-audios/3fe6.wav", "question": "Identify the source of the voice.",
         "choices": ["Man", "Woman", "Child", "Robot"], "answer": "Man", **meta},
        {"id": "a2", "audio_id": "./test-mini-audios/a2.wav", "question": "Q", "choices": ["x", "y"], "answer": "x",
         **meta},
        {"id": "a3", "audio": "./test-mini-audios/3fe6.wav", "question": "Q", "choices": ["x", "y"], "answer": "x"},
        {"id": "a4", "audio_id": "./test-mini-audios/3fe6.wav", "question": "Q", "choices": [], "answer": "x"},
        {"id": "a5", "audio_id": "./test-mini-audios/3fe6.wav", "question": "Q", "choices": ["x", "y"],
         "answer": "Cat"},
    ]))
    out = tmp_path / "mmau.jsonl"
    _, rows, reasons = run("mmau_json", src, out)

    assert reasons == {
        1: f"missing_media:{tmp_path / 'MMAU' / 'test-mini-audios' / 'a2.wav'}",
        2: "missing_field:audio_id: no column 'audio_id' (mapped to audio); the record's columns: id, audio, question, "
           "choices, answer",
        3: "bad_field:choices: no options",
        4: "bad_answer: 'Cat' is neither an option letter (A-B) nor the text of an option (an index must be a JSON "
           "integer, 0-based)",
    }
    opts = ["Man", "Woman", "Child", "Robot"]
    assert rows == [{
        "id": "3fe6", "source": "mmau_json", "verifier": "multiple-choice", "answer": "A",
        "verifier_kwargs": {"options": dict(zip("ABCD", opts))},
        "messages": user([{"type": "audio", "audio": "MMAU/test-mini-audios/3fe6.wav"}],
                         mcq_text("Identify the source of the voice.", opts))}]
    loads_clean(out, 1)


def test_screenspot_v2_json_preset_reads_pixel_boxes_as_xywh(tmp_path):
    tmp_path = tmp_path.resolve()
    png(tmp_path / "screenspotv2_image" / "web_1.png", (200, 100))
    src = write_jsonl(tmp_path / "screenspot_web_v2.jsonl", [
        {"img_filename": "web_1.png", "bbox": [20, 10, 30, 40], "instruction": "open the menu", "data_type": "icon",
         "data_source": "shop"},
        # with img_size, `auto` would read these corners; the preset keeps [x, y, w, h]: [20, 10, 50, 50] / (200, 100)
        {"img_filename": "web_1.png", "img_size": [200, 100], "bbox": [20, 10, 30, 40], "instruction": "close"},
        {"img_filename": "web_1.png", "bbox": [150, 10, 100, 20], "instruction": "x"},
        {"img_filename": "web_1.png", "bbox": [1, 2, 3, 4]},
    ])
    out = tmp_path / "ss.jsonl"
    _, rows, reasons = run("screenspot_v2_json", src, out, media_root=tmp_path / "screenspotv2_image")
    assert reasons == {
        2: "bad_bbox: bbox [150, 10, 100, 20] read as xywh pixels lies outside the 200x100 image (pass --bbox-format "
           "xyxy or xywh if that reading is wrong)",
        3: "missing_field:instruction: no column 'instruction' (mapped to instruction); the record's columns: "
           "img_filename, bbox",
    }
    assert [(r["id"], r["source"], r["answer"]) for r in rows] == [
        ("screenspot_v2_json-000000", "screenspot_v2_json", [100, 100, 250, 500]),
        ("screenspot_v2_json-000001", "screenspot_v2_json", [100, 100, 250, 500])]
    loads_clean(out, 2)
    _, auto_rows, _ = run("screenspot", src, tmp_path / "auto.jsonl", media_root=tmp_path / "screenspotv2_image")
    assert auto_rows[1]["answer"] == [100, 100, 150, 400]  # what the preset's pinned format avoids


def test_docs_list_every_adapters_roles_and_every_preset():
    """docs/data.md's roles and presets tables, and README's preset list, name what the code registers."""
    from omni_rl.environments.adapters import ADAPTERS
    from omni_rl.environments.mapping import PRESETS

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "data.md").read_text()
    for a in ADAPTERS.values():
        roles = ", ".join(f"`{r}`" for r in a.roles)
        assert f"| `{a.name}` | {roles}" in doc, a.name
    table = doc.split("| preset | adapter | layout it expects |\n|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split(" | ")[:2] for line in table.splitlines()] == [
        [f"| `{p.name}`", f"`{p.adapter}`"] for p in PRESETS.values()]
    readme = (root / "README.md").read_text()
    assert "presets for published layouts: " + ", ".join(list(PRESETS)[:2]) + ",\n" in readme
    assert ", ".join(list(PRESETS)[2:]) + " (docs/data.md)" in readme
