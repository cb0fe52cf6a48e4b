"""`omni-rl convert` output names registered verifiers only: a converted row (or an MPO pair's prompt) whose verifier
came from the source data and names code (`builtins:eval`, `os:system`, ...) is rejected as `unknown_verifier`,
counted, and nothing is imported. Today's adapters choose built-in names themselves; the adapters here carry the
source's own `verifier` field over, as a column mapping could."""

from __future__ import annotations

import json

from omni_rl.environments.adapters import ADAPTERS, Adapter
from omni_rl.environments.convert import convert


def _row(record, index, ctx):
    return {"id": f"r{index}", "source": ctx.source, "messages": [{"role": "user", "content": record["q"]}],
            "verifier": record["verifier"], "answer": record["a"]}


def _pair(record, index, ctx):
    return {"id": f"p{index}", "source": ctx.source, "prompt": _row(record, index, ctx), "chosen": "a",
            "rejected": "b"}


def test_converted_rows_naming_code_are_rejected(tmp_path, monkeypatch, import_trap):
    monkeypatch.setitem(ADAPTERS, "copy_verifier", Adapter("copy_verifier", "q, a, verifier", "rows", _row))
    monkeypatch.setitem(ADAPTERS, "copy_verifier_pairs",
                        Adapter("copy_verifier_pairs", "q, a, verifier", "pairs", _pair, output="pairs"))
    names = ["mathruler"] + import_trap.names + [None]
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps({"q": "1+1?", "a": "2", "verifier": v}) + "\n" for v in names))
    for adapter in ("copy_verifier", "copy_verifier_pairs"):
        out = tmp_path / f"{adapter}.jsonl"
        res = convert(adapter, src, out)
        n = len(names) - 1
        assert (res.counts["records_in"], res.counts["converted"], res.counts["rejected"]) == (n + 1, 1, n)
        assert res.counts["unknown_verifier"] == n
        rejects = [json.loads(line) for line in res.rejects_path.read_text().splitlines()]
        assert [r["reason"] for r in rejects] == [f"unknown_verifier:{v}" for v in names[1:]]
        assert [r["index"] for r in rejects] == list(range(1, n + 1))
        assert len(out.read_text().splitlines()) == 1
    import_trap.assert_not_imported()
