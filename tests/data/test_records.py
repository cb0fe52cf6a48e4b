"""One reader of dataset files (`omni_rl.data.records`) for both callers: the training-row loader
(`omni_rl.data.loading`) and the converter of public datasets (`omni_rl.environments`). For each format, both see
the same rows in the same order, with the same line / index, and a bad row is named the same way by both."""

import json

import pytest

import omni_rl.data.loading as loading
import omni_rl.data.records as records
import omni_rl.environments.records as env_records
from omni_rl.environments import convert

ROWS = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i}"}], "verifier": "mathruler",
         "answer": str(i)} for i in range(3)]
BAD = {"id": "bad", "messages": [{"role": "user", "content": "q"}], "verifier": "mathruler"}  # no answer


def test_both_callers_import_the_one_reader():
    assert env_records.iter_records is records.iter_records
    assert env_records.source_columns is records.source_columns
    assert env_records.SourceRecord is records.SourceRecord
    assert convert.iter_records is records.iter_records
    assert loading.iter_records is records.iter_records


def _write(tmp_path, fmt, rows):
    if fmt == "jsonl":
        path = tmp_path / "d.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
        return path
    if fmt == "json":
        path = tmp_path / "d.json"
        path.write_text(json.dumps(rows))
        return path
    import datasets

    ds = datasets.Dataset.from_list(rows)
    if fmt == "parquet":
        path = tmp_path / "d.parquet"
        ds.to_parquet(str(path))
    else:
        path = tmp_path / "saved"
        ds.save_to_disk(str(path))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "saved"])
def test_loader_and_converter_read_the_same_rows(tmp_path, fmt):
    path = _write(tmp_path, fmt, [*ROWS, BAD])
    seen = list(records.iter_records(path))
    loaded = list(loading.iter_samples(path, known_verifiers=lambda name: True, check_media=False))
    # the same number of rows, in the same order; the JSONL file's malformed last line is a row of both
    n = len(ROWS) + 1 + (fmt == "jsonl")
    assert len(seen) == len(loaded) == n
    assert [r.index for r in seen] == list(range(n))
    assert [s.sample.id for s in loaded[:3]] == [r.record["id"] for r in seen[:3]] == ["r0", "r1", "r2"]
    assert [s.pos for s in loaded] == list(range(n))
    # the row without an answer: named by its line (JSONL) or its 0-based index (the rest), by both callers
    bad_seen, bad_loaded = seen[3], loaded[3]
    assert bad_loaded.reject["reason"] == "missing_field:answer"
    if fmt == "jsonl":
        assert bad_seen.line == bad_loaded.line == 4 and bad_loaded.index is None
        assert seen[4].error is not None and seen[4].line == 5
        assert loaded[4].reject["line"] == 5 and loaded[4].reject["reason"].startswith("malformed_json: ")
        assert loaded[4].reject["row"] == seen[4].record == "{not json"
    else:
        assert bad_seen.line is None and bad_loaded.index == bad_seen.index == 3
        assert bad_loaded.reject["index"] == 3 and bad_loaded.reject["line"] is None
    assert loading.count_rows(path) == n
    res = loading.load_samples(path, known_verifiers=lambda name: True, check_media=False)
    assert (res.counts["rows_in"], res.counts["usable"], res.counts["rejected"]) == (n, 3, n - 3)


def test_unreadable_sources_name_the_file(tmp_path):
    bad_array = tmp_path / "broken.json"
    bad_array.write_text('[{"id": 1}, ')
    for read in (lambda p: list(records.iter_records(p)), loading.load_samples):
        with pytest.raises(ValueError, match="broken.json starts like a JSON array but is not valid JSON"):
            read(bad_array)
    with pytest.raises(FileNotFoundError, match="none.jsonl"):
        loading.load_samples(tmp_path / "none.jsonl")
    with pytest.raises(FileNotFoundError, match="none.jsonl"):
        list(records.iter_records(tmp_path / "none.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    assert [r.record for r in records.iter_records(tmp_path / "x.csv")] == [{"a": "1", "b": "2"}]
    with pytest.raises(ValueError, match="unsupported dataset format '.csv'.*omni-rl convert"):
        loading.load_samples(tmp_path / "x.csv")
