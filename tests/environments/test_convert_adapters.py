"""Adapters from public dataset formats to our rows: each fixture is written here in the public schema, with bad
records that must be rejected with their reason; the converted rows are compared exactly (hand-computed), every
record is accounted for, and the output loads with zero rejects."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omni_rl.data.loading import load_samples
from omni_rl.data.pairs import load_pairs
from omni_rl.data.synthetic import write_mp4
from omni_rl.environments.convert import ConvertResult, convert
from omni_rl.verifiers import get_verifier

INSTR = "Think briefly inside <think></think>, then give the final answer in \\boxed{}."


# ------------------------------------------------------------------------------------------------------ helpers
def png(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def png_bytes(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def tone(n: int = 1600) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)


def wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(), 16000, subtype="PCM_16", format="WAV")
    return path


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a media file" * 8)
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """One line per record; a str record is written as the raw line (malformed JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(adapter: str, src: Path, out: Path, **kw: Any) -> tuple[ConvertResult, list[dict], dict[int, str]]:
    """Convert and check the accounting: records_in == converted + rejected, the files hold exactly that many lines,
    and each rejected index appears once."""
    res = convert(adapter, src, out, **kw)
    rows, rejects = read_jsonl(out), read_jsonl(res.rejects_path)
    c = res.counts
    assert c["records_in"] == c["converted"] + c["rejected"]
    assert (len(rows), len(rejects)) == (c["converted"], c["rejected"])
    reasons = {r["index"]: r["reason"] for r in rejects}
    assert len(reasons) == len(rejects)
    return res, rows, reasons


def loads_clean(out: Path, n: int) -> list:
    res = load_samples(out)
    assert res.counts["rejected"] == 0, res.rejects
    assert res.counts["usable"] == n
    return res.samples


def user(parts: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": f"{text} {INSTR}"}]}]


# ---------------------------------------------------------------------------------------------------------- mmpr
def test_mmpr_preference_records_become_mpo_pairs(tmp_path):
    tmp_path = tmp_path.resolve()
    images = tmp_path / "mmpr" / "images"
    png(images / "a.png")
    png(images / "b.png")
    src = write_jsonl(tmp_path / "mmpr" / "annotations" / "geo.jsonl", [
        {"id": "geo-1", "image": "a.png", "question": "<image>\nWhat is the angle?", "chosen": "It is 30 degrees.",
         "rejected": "It is 60 degrees."},
        {"image": ["a.png", "b.png"], "question": "Image-1: <image>\nImage-2: <image>\nWhich is larger?",
         "chosen": "The first.", "rejected": "The second."},
        {"question": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
        {"image": "a.png", "question": "Q?", "chosen": "same", "rejected": " same "},
        {"image": "missing.png", "question": "<image>Q", "chosen": "x", "rejected": "y"},
        {"image": "a.png", "question": "<image><image> Q", "chosen": "x", "rejected": "y"},
        "{not json",
        {"image": "a.png", "question": "Q", "chosen": "x"},
    ])
    out = tmp_path / "out" / "pairs.jsonl"
    res, rows, reasons = run("mmpr", src, out, media_root=images)

    assert res.counts["converted"] == 3 and res.counts["rejected"] == 5
    assert reasons[3] == "bad_field:rejected: identical to chosen"
    assert reasons[4] == f"missing_media:{images / 'missing.png'}"
    assert reasons[5] == "bad_field:question: 2 <image> placeholder(s) for 1 image(s)"
    assert reasons[6].startswith("malformed_json: ")
    assert reasons[7] == "missing_field:rejected"
    a, b = "../mmpr/images/a.png", "../mmpr/images/b.png"
    assert rows[0] == {
        "id": "geo-1", "source": "mmpr", "chosen": "It is 30 degrees.", "rejected": "It is 60 degrees.",
        "prompt": {"id": "geo-1", "source": "mmpr", "verifier": "format", "answer": None, "messages": [
            {"role": "user", "content": [{"type": "image", "image": a},
                                         {"type": "text", "text": "What is the angle?"}]}]}}
    assert rows[1]["id"] == "mmpr-000001"
    assert rows[1]["prompt"]["messages"][0]["content"] == [
        {"type": "text", "text": "Image-1:"}, {"type": "image", "image": a}, {"type": "text", "text": "Image-2:"},
        {"type": "image", "image": b}, {"type": "text", "text": "Which is larger?"}]
    assert rows[2]["prompt"]["messages"] == [{"role": "user", "content": "What is 2 + 2?"}]

    pairs = load_pairs(out)
    assert pairs.counts == {"rows_in": 3, "usable": 3, "rejected": 0}, pairs.rejects
    assert pairs.pairs[0].sample.messages[0]["content"][0]["image"] == str(images / "a.png")
    assert [p.sample.modality for p in pairs.pairs] == ["image", "image", "text"]


def test_mmpr_embedded_image_bytes_are_written_next_to_out(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": png_bytes((6, 4)), "path": None}], "question": ["<image>\nDescribe it."],
         "chosen": ["A green rectangle."], "rejected": ["A cat."]},
        features=datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                    "chosen": datasets.Value("string"), "rejected": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "mmpr_hf"))
    out = tmp_path / "pairs.jsonl"
    _, rows, reasons = run("mmpr", tmp_path / "mmpr_hf", out)
    assert reasons == {}
    assert rows[0]["prompt"]["messages"][0]["content"][0] == {"type": "image", "image": "pairs_media/000000.png"}
    with Image.open(tmp_path / "pairs_media" / "000000.png") as im:
        assert im.size == (6, 4)
    assert load_pairs(out).counts["usable"] == 1


# --------------------------------------------------------------------------------------------------------- clevr
def test_clevr_questions_file_numeric_answers_to_mathruler_words_to_string_match(tmp_path):
    tmp_path = tmp_path.resolve()
    images = tmp_path / "CLEVR" / "images" / "val"
    png(images / "CLEVR_val_000000.png")
    garbage(images / "corrupt.png")
    img = "CLEVR_val_000000.png"
    questions = [
        {"image_index": 0, "image_filename": img, "question": "How many cubes are there?", "answer": "3",
         "question_index": 0},
        {"image_index": 0, "image_filename": img, "question": "Is there a red sphere?", "answer": "yes",
         "question_index": 1},
        {"image": img, "problem": "Find x.", "solution": "<answer> \\frac{1}{2} </answer>"},
        {"image_filename": img, "question": "How long is it?", "answer": 2.5, "question_index": 3},
        {"image_filename": img, "question": "Q", "question_index": 4},
        {"image_filename": img, "question": "Q", "answer": True, "question_index": 5},
        {"image_filename": "corrupt.png", "question": "Q", "answer": "no", "question_index": 6},
        {"image_filename": img, "question": "Q", "answer": "no", "question_index": 0},
        [1, 2],
        {"image_filename": img, "question": "What share is red?", "answer": "25%", "question_index": 9},
    ]
    src = tmp_path / "CLEVR" / "questions" / "CLEVR_val_questions.json"
    src.parent.mkdir(parents=True)
    src.write_text(json.dumps({"info": {"split": "val"}, "questions": questions}, indent=1))
    out = tmp_path / "data" / "clevr.jsonl"
    res, rows, reasons = run("clevr", src, out, media_root=images)

    assert res.counts["records_in"] == 10 and res.counts["converted"] == 5
    assert reasons[4] == "missing_field:answer/solution"
    assert reasons[5].startswith("bad_field:answer: a true/false value is ambiguous")
    assert reasons[6].startswith(f"corrupt_media:{images / 'corrupt.png'}: ")
    assert reasons[7] == "duplicate_id: '0' already used by record 0"
    assert reasons[8] == "bad_record: expected a JSON object, got list"
    assert res.counts["corrupt_media"] == 1 and res.counts["bad_field"] == 1

    part = [{"type": "image", "image": "../CLEVR/images/val/CLEVR_val_000000.png"}]
    assert rows == [
        {"id": "0", "source": "clevr", "messages": user(part, "How many cubes are there?"),
         "verifier": "mathruler", "answer": "3"},
        {"id": "1", "source": "clevr", "messages": user(part, "Is there a red sphere?"),
         "verifier": "string-match", "answer": "yes"},
        {"id": "clevr-000002", "source": "clevr", "messages": user(part, "Find x."), "verifier": "mathruler",
         "answer": "\\frac{1}{2}"},
        {"id": "3", "source": "clevr", "messages": user(part, "How long is it?"), "verifier": "mathruler",
         "answer": "2.5"},
        {"id": "9", "source": "clevr", "messages": user(part, "What share is red?"), "verifier": "mathruler",
         "answer": "25%"},
    ]
    loads_clean(out, 5)


# ---------------------------------------------------------------------------------------------------- screenspot
def test_screenspot_boxes_in_every_convention_become_norm1000(tmp_path):
    tmp_path = tmp_path.resolve()
    imgs = tmp_path / "screenspot_imgs"
    png(imgs / "web_1.png", (200, 100))
    png(imgs / "mobile_1.png", (50, 80))
    web = "web_1.png"
    src = tmp_path / "screenspot_web.json"
    src.write_text(json.dumps([
        # original ScreenSpot: pixel [x, y, w, h] -> [20, 10, 50, 50] / (200, 100)
        {"img_filename": web, "bbox": [20, 10, 30, 40], "instruction": "open the menu", "data_type": "icon"},
        # normalised [x1, y1, x2, y2]
        {"img_filename": web, "bbox": [0.1, 0.2, 0.35, 0.6], "instruction": "close"},
        # ScreenSpot-Pro: img_size + pixel [x1, y1, x2, y2]; 30.7 / 200 = 0.1535 -> 153, 61.3 / 200 = 0.3065 -> 307
        {"img_filename": web, "img_size": [200, 100], "bbox": [30.7, 20, 61.3, 33], "instruction": "save"},
        {"img_filename": web, "img_size": [400, 200], "bbox": [1, 1, 5, 5], "instruction": "x"},
        {"img_filename": web, "bbox": [150, 10, 100, 20], "instruction": "x"},
        {"img_filename": web, "bbox": [10, 10, 0, 5], "instruction": "x"},
        {"img_filename": web, "bbox": [1, 2, 3], "instruction": "x"},
        {"img_filename": web, "bbox": {"x": 0, "y": 0, "width": 100, "height": 50}, "instruction": "top-left"},
        # 50x80 image: [5, 8, 20, 16] xywh -> [5, 8, 25, 24]
        {"img_filename": "mobile_1.png", "bbox": [5, 8, 20, 16], "instruction": "tap"},
        {"bbox": [1, 2, 3, 4], "instruction": "x"},
        {"img_filename": web, "bbox": [1, 2, 3, 4]},
    ]))
    out = tmp_path / "gui.jsonl"
    res, rows, reasons = run("screenspot", src, out, media_root=imgs)

    assert reasons == {
        3: "bad_field:img_size: the record says 400x200, the image is 200x100",
        4: "bad_bbox: bbox [150, 10, 100, 20] read as xywh pixels lies outside the 200x100 image (pass --bbox-format "
           "xyxy or xywh if that reading is wrong)",
        5: "bad_bbox: bbox [10, 10, 0, 5] read as xywh pixels has no area",
        6: "bad_field:bbox: expected 4 finite numbers, got [1, 2, 3]",
        9: "missing_field:img_filename/image/image_path/file_name",
        10: "missing_field:instruction",
    }
    space = ("Give the click point in coordinates normalised to 0-1000 ((0, 0) is the top-left corner, (1000, 1000) "
             "the bottom-right) as (x, y).")
    part = [{"type": "image", "image": "screenspot_imgs/web_1.png"}]
    assert rows[0] == {"id": "screenspot-000000", "source": "screenspot",
                       "messages": user(part, f"Instruction: open the menu\n{space}"), "verifier": "gui-coordinate",
                       "answer": [100, 100, 250, 500], "verifier_kwargs": {"coord_space": "norm1000"}}
    assert [r["answer"] for r in rows] == [[100, 100, 250, 500], [100, 200, 350, 600], [153, 200, 307, 330],
                                           [0, 0, 500, 500], [100, 100, 500, 300]]
    assert rows[4]["messages"][0]["content"][0] == {"type": "image", "image": "screenspot_imgs/mobile_1.png"}
    samples = loads_clean(out, 5)
    # a click at the centre of the first box (pixel (35, 30) of 200x100) is inside it
    gui = get_verifier("gui-coordinate")
    assert gui("\\boxed{(175, 300)}", samples[0].answer, **samples[0].verifier_kwargs) == 1.0

    out2 = tmp_path / "gui_xyxy.jsonl"
    _, rows2, _ = run("screenspot", src, out2, media_root=imgs, bbox_format="xyxy")
    assert rows2[0]["answer"] == [100, 100, 150, 400]  # [20, 10, 30, 40] read as corners


def test_screenspot_hf_dataset_dir_with_embedded_images(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"file_name": ["pc_1.png", "pc_2.png"], "image": [{"bytes": png_bytes((40, 20)), "path": None}] * 2,
         "bbox": [[0.25, 0.5, 0.5, 0.75], [0.5, 0.5, 0.25, 0.75]], "instruction": ["minimise", "bad box"],
         "data_type": ["icon", "icon"], "data_source": ["windows", "windows"]},
        features=datasets.Features({"file_name": datasets.Value("string"), "image": datasets.Image(),
                                    "bbox": datasets.List(datasets.Value("float64")),
                                    "instruction": datasets.Value("string"), "data_type": datasets.Value("string"),
                                    "data_source": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "ScreenSpot"))
    out = tmp_path / "ss.jsonl"
    _, rows, reasons = run("screenspot", tmp_path / "ScreenSpot", out, source="screenspot_pc")
    assert reasons == {1: "bad_bbox: bbox [0.5, 0.5, 0.25, 0.75] read as xyxy normalised has no area"}
    assert rows[0]["source"] == "screenspot_pc" and rows[0]["answer"] == [250, 500, 500, 750]
    assert rows[0]["messages"][0]["content"][0] == {"type": "image", "image": "ss_media/000000.png"}
    loads_clean(out, 1)


# --------------------------------------------------------------------------------------------------- librispeech
def test_librispeech_paths_and_embedded_arrays_to_asr_rows(tmp_path):
    tmp_path = tmp_path.resolve()
    wav(tmp_path / "ls" / "clips" / "0.wav")
    samples = [0.0, 0.5, -0.5, 0.25]
    src = write_jsonl(tmp_path / "ls" / "dev.jsonl", [
        {"id": "1272-128104-0000", "file": "clips/0.wav", "text": "MISTER QUILTER IS THE APOSTLE"},
        {"id": "x-1", "audio": {"path": "clips/0.wav", "array": samples, "sampling_rate": 16000}, "text": "HELLO"},
        {"id": "x-2", "audio": {"array": [0.0, 2.0], "sampling_rate": 16000}, "text": "LOUD"},
        {"id": "x-3", "audio": {"array": [0.1, 0.2], "sampling_rate": 0}, "text": "X"},
        {"id": "x-4", "file": "clips/0.wav", "text": "   "},
        {"id": "x-5", "file": "clips/nope.flac", "text": "GONE"},
        {"id": "x-6", "file": "https://example.com/a.flac", "text": "URL"},
        {"id": "x-7", "audio": 5, "text": "X"},
        {"id": "1272-128104-0000", "file": "clips/0.wav", "text": "AGAIN"},
    ])
    out = tmp_path / "out" / "asr.jsonl"
    res, rows, reasons = run("librispeech", src, out)

    assert reasons == {
        2: "bad_field:audio: samples reach 2; expected float PCM in [-1, 1]",
        3: "bad_field:audio: an audio array needs a positive integer 'sampling_rate', got 0",
        4: "bad_field:text: empty",
        5: f"missing_media:{tmp_path / 'ls' / 'clips' / 'nope.flac'}",
        6: "bad_field:file: 'https://example.com/a.flac' is not a local path (download the audio files and point "
           "--media-root at them)",
        7: "bad_field:audio: expected a file path or a {path, bytes} object, got int",
        8: "duplicate_id: '1272-128104-0000' already used by record 0",
    }
    assert rows == [
        {"id": "1272-128104-0000", "source": "librispeech", "verifier": "asr",
         "answer": "MISTER QUILTER IS THE APOSTLE",
         "messages": user([{"type": "audio", "audio": "../ls/clips/0.wav"}], "Transcribe the speech in the audio.")},
        {"id": "x-1", "source": "librispeech", "verifier": "asr", "answer": "HELLO",
         "messages": user([{"type": "audio", "audio": "asr_media/000001.wav"}], "Transcribe the speech in the audio.")},
    ]
    data, sr = sf.read(str(tmp_path / "out" / "asr_media" / "000001.wav"), dtype="float32")
    assert sr == 16000 and np.allclose(data, samples, atol=1 / 32768)
    loads_clean(out, 2)
    assert get_verifier("asr")("<think>x</think> \\boxed{hello}", rows[1]["answer"]) == 1.0


def test_librispeech_hf_audio_feature_bytes(tmp_path):
    import datasets

    buf = io.BytesIO()
    sf.write(buf, tone(), 16000, format="FLAC")
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": buf.getvalue(), "path": "84-121123-0000.flac"}],
                                     "text": ["GO DO YOU HEAR"], "id": ["84-121123-0000"]})
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=16000))  # the HF librispeech_asr column type
    ds.save_to_disk(str(tmp_path / "librispeech_dev"))
    out = tmp_path / "asr.jsonl"
    _, rows, reasons = run("librispeech", tmp_path / "librispeech_dev", out)
    assert reasons == {}
    assert rows[0]["id"] == "84-121123-0000" and rows[0]["answer"] == "GO DO YOU HEAR"
    assert rows[0]["messages"][0]["content"][0] == {"type": "audio", "audio": "asr_media/000000.flac"}
    loads_clean(out, 1)


# ----------------------------------------------------------------------------------------------------- video_mcq
def test_video_mcq_letters_indices_and_option_texts(tmp_path):
    tmp_path = tmp_path.resolve()
    vid = tmp_path / "videos"
    vid.mkdir()
    write_mp4(vid / "clip.mp4", np.full((4, 16, 16, 3), 120, np.uint8))
    garbage(vid / "bad.mp4")
    src = write_jsonl(vid / "qa.jsonl", [
        {"video": "clip.mp4", "question": "What moves?", "options": ["A. a dot", "B. a square", "C. nothing"],
         "answer": "A", "question_id": "q0"},
        {"video": "clip.mp4", "question": "Direction?", "candidates": ["left", "right"], "answer": "right"},
        {"video_path": "clip.mp4", "question": "Colour?", "choices": {"A": "grey", "B": "red"}, "answer": 1,
         "id": "n2"},
        {"video": "clip.mp4", "question": "Q?", "options": ["x", "y"], "answer": "(C)"},
        {"video": "clip.mp4", "question": "Q?", "options": ["x", "y"], "answer": 2},
        {"video": "clip.mp4", "question": "Q?", "options": ["only"], "answer": "A"},
        {"video": "bad.mp4", "question": "Q?", "options": ["x", "y"], "answer": "A"},
        {"video": "clip.mp4", "question": "Q?", "options": ["x", "y"], "answer": "zebra"},
        {"video": "clip.mp4", "question": "Q?", "answer": "A"},
        {"video": "clip.mp4", "question": "Axis?", "options": ["x", "y"], "answer": "y", "id": "t9"},
    ])
    out = tmp_path / "video.jsonl"
    res, rows, reasons = run("video_mcq", src, out)

    assert {i: r for i, r in reasons.items() if i != 6} == {
        3: "bad_answer: letter C is not one of the options A-B",
        4: "bad_answer: index 2 is out of range for 2 options (indices are 0-based)",
        5: "bad_field:options: 1 option(s); a multiple-choice question needs at least 2",
        7: "bad_answer: 'zebra' is neither an option letter (A-B) nor the text of an option (an index must be a "
           "JSON integer, 0-based)",
        8: "missing_field:options/candidates/choices",
    }
    assert reasons[6].startswith(f"corrupt_media:{vid / 'bad.mp4'}: ")
    part = [{"type": "video", "video": "videos/clip.mp4"}]
    assert rows[0] == {
        "id": "q0", "source": "video_mcq", "verifier": "multiple-choice", "answer": "A",
        "verifier_kwargs": {"options": {"A": "a dot", "B": "a square", "C": "nothing"}},
        "messages": user(part, "What moves?\nA. a dot\nB. a square\nC. nothing\nAnswer with the option's letter.")}
    assert [(r["id"], r["answer"], r["verifier_kwargs"]["options"]) for r in rows[1:]] == [
        ("video_mcq-000001", "B", {"A": "left", "B": "right"}), ("n2", "B", {"A": "grey", "B": "red"}),
        ("t9", "B", {"A": "x", "B": "y"})]
    samples = loads_clean(out, 4)
    assert {s.modality for s in samples} == {"video"}


def test_video_mcq_parquet_source(tmp_path):
    import datasets

    tmp_path = tmp_path.resolve()
    write_mp4(tmp_path / "clip.mp4", np.full((4, 16, 16, 3), 60, np.uint8))
    datasets.Dataset.from_list([
        {"video": "clip.mp4", "question": "Colour?", "options": ["(A) red", "(B) blue"], "answer": "B"},
        {"video": "clip.mp4", "question": "Q?", "options": ["A. x", "C. y"], "answer": "A"},
    ]).to_parquet(str(tmp_path / "test.parquet"))
    out = tmp_path / "v.jsonl"
    _, rows, reasons = run("video_mcq", tmp_path / "test.parquet", out)
    assert reasons == {}
    assert [r["verifier_kwargs"]["options"] for r in rows] == [{"A": "red", "B": "blue"}, {"A": "A. x", "B": "C. y"}]
    assert rows[0]["messages"][0]["content"][0] == {"type": "video", "video": "clip.mp4"}
    loads_clean(out, 2)


# ------------------------------------------------------------------------------------------------------ audio_qa
def test_audio_qa_options_to_multiple_choice_else_string_match(tmp_path):
    tmp_path = tmp_path.resolve()
    wav(tmp_path / "aqa" / "tone.wav")
    src = tmp_path / "aqa" / "test.json"
    src.write_text(json.dumps([
        {"audio": "tone.wav", "question": "What instrument is playing?", "answer": "piano"},
        {"audio_path": "tone.wav", "question": "Is the pitch high or low?", "options": ["high", "low"],
         "answer": "B", "id": "a1"},
        {"audio": "tone.wav", "question": "How many beeps?", "answer": 3},
        {"audio": "tone.wav", "question": "What animal?", "options": None, "answer": ["dog", "a dog"]},
        {"audio": "tone.wav", "question": "Q"},
        {"audio": "tone.wav", "question": "Q", "choices": ["x", "y"], "answer": "maybe"},
        {"question": "Q", "answer": "x"},
        "just a string",
    ]))
    out = tmp_path / "aqa.jsonl"
    res, rows, reasons = run("audio_qa", src, out, source="clotho_aqa")

    assert reasons == {
        4: "missing_field:answer",
        5: "bad_answer: 'maybe' is neither an option letter (A-B) nor the text of an option (an index must be a "
           "JSON integer, 0-based)",
        6: "missing_field:audio/audio_path/file",
        7: "bad_record: expected a JSON object, got str",
    }
    part = [{"type": "audio", "audio": "aqa/tone.wav"}]
    assert rows == [
        {"id": "clotho_aqa-000000", "source": "clotho_aqa", "verifier": "string-match", "answer": "piano",
         "messages": user(part, "What instrument is playing?")},
        {"id": "a1", "source": "clotho_aqa", "verifier": "multiple-choice", "answer": "B",
         "verifier_kwargs": {"options": {"A": "high", "B": "low"}},
         "messages": user(part, "Is the pitch high or low?\nA. high\nB. low\nAnswer with the option's letter.")},
        {"id": "clotho_aqa-000002", "source": "clotho_aqa", "verifier": "string-match", "answer": "3",
         "messages": user(part, "How many beeps?")},
        {"id": "clotho_aqa-000003", "source": "clotho_aqa", "verifier": "string-match", "answer": ["dog", "a dog"],
         "messages": user(part, "What animal?")},
    ]
    loads_clean(out, 4)


# ----------------------------------------------------------------------------------------------------- the driver
def test_rejects_file_records_index_line_and_summarised_record(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [
        {"audio": {"array": [0.0] * 100 + [3.0], "sampling_rate": 16000}, "question": "Q", "answer": "x"}])
    res = convert("audio_qa", src, tmp_path / "rows.jsonl")
    (rej,) = read_jsonl(res.rejects_path)
    assert res.rejects_path == tmp_path / "rows.rejects.jsonl"
    assert rej == {"index": 0, "line": 1, "id": None, "reason": "bad_field:audio: samples reach 3; expected float "
                   "PCM in [-1, 1]", "record": {"audio": {"array": "<list of 101 numbers>", "sampling_rate": 16000},
                                                "question": "Q", "answer": "x"}}
    assert (tmp_path / "rows.jsonl").read_text() == ""


def test_bad_arguments_are_clear_errors(tmp_path):
    from omni_rl.environments.convert import UnknownAdapterError

    src = write_jsonl(tmp_path / "a.jsonl", [{}])
    with pytest.raises(UnknownAdapterError, match="known: mmpr, clevr, screenspot, librispeech, video_mcq, audio_qa"):
        convert("nope", src, tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="OUT must be a JSONL file"):
        convert("clevr", src, tmp_path / "o.parquet")
    with pytest.raises(ValueError, match="is the source itself"):
        convert("clevr", src, src)
    with pytest.raises(FileNotFoundError, match="source not found"):
        convert("clevr", tmp_path / "none.jsonl", tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()
