"""`omni-rl convert ADAPTER SRC OUT` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from omni_rl.data.loading import load_samples

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_NAMES = ("mmpr", "clevr", "screenspot", "librispeech", "video_mcq", "audio_qa")
PRESET_NAMES = ("nextqa_csv", "videomme_parquet", "mmau_json", "screenspot_v2_json")


def omni(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_convert_command_writes_rows_and_rejects(tmp_path):
    Image.new("RGB", (8, 6), (1, 2, 3)).save(tmp_path / "img.png")
    src = tmp_path / "qa.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"image_filename": "img.png", "question": "How many?", "answer": 2, "question_index": 0},
        {"image_filename": "img.png", "question": "Colour?", "answer": "red", "question_index": 1},
        {"image_filename": "gone.png", "question": "Colour?", "answer": "red", "question_index": 2},
    ]) + "\n")
    out = tmp_path / "data" / "rows.jsonl"
    p = omni("convert", "clevr", str(src), str(out), "--source", "shapes_qa")
    assert p.returncode == 0, p.stderr
    assert "convert clevr: records_in 3 = converted 2 + rejected 1 (missing_media 1)" in p.stdout
    assert f"rejected record 2 (line 3): missing_media:{tmp_path / 'gone.png'}" in p.stdout
    (rej,) = [json.loads(line) for line in (tmp_path / "data" / "rows.rejects.jsonl").read_text().splitlines()]
    assert (rej["index"], rej["line"], rej["id"]) == (2, 3, None)
    res = load_samples(out)
    assert res.counts["usable"] == 2 and res.counts["rejected"] == 0
    assert [(s.source, s.verifier, s.answer) for s in res.samples] == [("shapes_qa", "mathruler", "2"),
                                                                       ("shapes_qa", "string-match", "red")]


def test_convert_help_lists_adapters_and_what_they_read():
    p = omni("convert", "--help")
    assert p.returncode == 0
    for name in ADAPTER_NAMES:
        assert f"\n  {name}\n    reads:" in p.stdout, name
    for name in PRESET_NAMES:
        assert f"\n  {name} (adapter " in p.stdout, name
    for words in ("img_filename", "chosen, rejected", "sampling_rate", "--bbox-format", "records_in",
                  "--field ROLE=COLUMN", "--media-template '{}.mp4'", "--answer-index 0|1", "--mapping FILE.yaml",
                  "roles:  id, video, question, options, answer", ".csv / .tsv"):
        assert words in p.stdout, words
    assert "convert" in omni("--help").stdout


def test_convert_unknown_adapter_and_bad_paths_exit_2_with_one_line(tmp_path):
    p = omni("convert", "coco", "a.json", "b.jsonl")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "omni-rl convert: error: unknown adapter 'coco'; known: " + ", ".join(ADAPTER_NAMES) + "; presets: "
        + ", ".join(PRESET_NAMES)]
    p = omni("convert", "clevr", str(tmp_path / "none.json"), str(tmp_path / "o.jsonl"))
    assert p.returncode == 2 and "source not found" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "x.jsonl").write_text("{}\n")
    p = omni("convert", "clevr", str(tmp_path / "x.jsonl"), str(tmp_path / "o.csv"))
    assert p.returncode == 2 and "OUT must be a JSONL file" in p.stderr


def test_convert_column_mapping_flags_and_their_errors(tmp_path):
    """A video QA parquet whose clip is `<videoID>.mp4` in a folder, mapped with --field and --media-template."""
    import datasets
    import numpy as np

    from omni_rl.data.synthetic import write_mp4

    (tmp_path / "videos").mkdir()
    write_mp4(tmp_path / "videos" / "abc.mp4", np.full((4, 16, 16, 3), 90, np.uint8))
    datasets.Dataset.from_list([
        {"videoID": "abc", "question": "Colour?", "options": ["grey", "red"], "answer": "A"},
        {"videoID": "xyz", "question": "Colour?", "options": ["grey", "red"], "answer": "A"},
    ]).to_parquet(str(tmp_path / "test.parquet"))
    out = tmp_path / "v.jsonl"
    args = ("convert", "video_mcq", str(tmp_path / "test.parquet"), str(out), "--media-root", str(tmp_path / "videos"))
    p = omni(*args, "--field", "video=videoID", "--media-template", "{}.mp4")
    assert p.returncode == 0, p.stderr
    assert "convert video_mcq: records_in 2 = converted 1 + rejected 1 (missing_media 1)" in p.stdout
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["answer"], row["messages"][0]["content"][0]) == ("A", {"type": "video", "video": "videos/abc.mp4"})

    p = omni(*args, "--field", "video=video_id")
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "omni-rl convert: error: column 'video_id' (mapped to video) is not in the source; its columns: videoID, "
        "question, options, answer"]
    p = omni(*args, "--field", "clip=videoID")
    assert p.returncode == 2 and "has no role 'clip'; its roles: id, video, question, options, answer" in p.stderr
    (tmp_path / "m.yaml").write_text("fields: {video: videoID}\nmedia_template: '{}.mp4'\n")
    p = omni(*args, "--mapping", str(tmp_path / "m.yaml"))
    assert p.returncode == 0 and "converted 1 + rejected 1" in p.stdout


def test_parser_and_adapter_registry_import_no_heavy_modules():
    code = ("import sys, omni_rl.cli as c; c.build_parser(); import omni_rl.environments.convert, "
            "omni_rl.environments.mapping; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'PIL', 'datasets', 'torch', 'av'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
