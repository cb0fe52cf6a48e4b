"""Rows from a file name verifiers, never code: a row whose `verifier` spells a module or function (`builtins:eval`,
`os:system`, ...) is rejected as `unknown_verifier` and counted, by the loader that `omni-rl run`, `filter`,
`build-preferences` and the dry run share (`load_samples` / `iter_samples`) and by the MPO pairs loader; nothing named
by a row is imported. A name registered by a configured plugin module is accepted."""

from __future__ import annotations

import json
import sys

from omni_rl.data.loading import iter_samples, load_samples
from omni_rl.data.pairs import load_pairs

GOOD = {"id": "ok", "messages": [{"role": "user", "content": "1+1?"}], "verifier": "mathruler", "answer": "2"}


def _rows(path, names):
    rows = [GOOD] + [{**GOOD, "id": f"hostile-{i}", "verifier": name} for i, name in enumerate(names)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_naming_code_are_rejected_and_counted(import_trap, tmp_path):
    path = _rows(tmp_path / "rows.jsonl", import_trap.names)
    res = load_samples(path, rejects_path=tmp_path / "rejects.jsonl")  # the default predicate: verifier_exists
    n = len(import_trap.names)
    assert [s.id for s in res.samples] == ["ok"]
    assert (res.counts["rows_in"], res.counts["usable"], res.counts["rejected"]) == (n + 1, 1, n)
    assert res.counts["unknown_verifier"] == n
    assert [r["reason"] for r in res.rejects] == [f"unknown_verifier:{name}" for name in import_trap.names]
    written = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == [f"hostile-{i}" for i in range(n)]
    # the streaming reader of the offline jobs gives the same verdicts
    rows = list(iter_samples(path, check_media=False))
    assert [r.sample is not None for r in rows] == [True] + [False] * n
    assert [r.reject["reason"] for r in rows[1:]] == [f"unknown_verifier:{name}" for name in import_trap.names]
    import_trap.assert_not_imported()


def test_pairs_whose_prompt_names_code_are_rejected(import_trap, tmp_path):
    lines = [{"id": "p0", "prompt": GOOD, "chosen": "a", "rejected": "b"}]
    lines += [{"id": f"p{i + 1}", "prompt": {**GOOD, "verifier": name}, "chosen": "a", "rejected": "b"}
              for i, name in enumerate(import_trap.names)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = load_pairs(path, rejects_path=tmp_path / "rejects.jsonl")
    n = len(import_trap.names)
    assert [p.id for p in res.pairs] == ["p0"]
    assert res.counts == {"rows_in": n + 1, "usable": 1, "rejected": n}
    assert [r["reason"] for r in res.rejects] == [f"prompt_unknown_verifier:{name}" for name in import_trap.names]
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == n
    import_trap.assert_not_imported()


def test_a_configured_plugin_name_is_accepted(tmp_path, monkeypatch, clean_registry):
    from omni_rl.verifiers import load_plugins

    (tmp_path / "rows_plugin_mod.py").write_text(
        "from omni_rl.verifiers import register_verifier\n\n"
        "@register_verifier('rows-plugin-check')\ndef check(response, answer, **kwargs):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _rows(tmp_path / "rows.jsonl", ["rows-plugin-check"])
    assert load_samples(path).counts["unknown_verifier"] == 1  # not configured: unknown
    try:
        load_plugins(["rows_plugin_mod"])
        res = load_samples(path)
        assert res.counts["usable"] == 2 and [s.verifier for s in res.samples] == ["mathruler", "rows-plugin-check"]
    finally:
        sys.modules.pop("rows_plugin_mod", None)
