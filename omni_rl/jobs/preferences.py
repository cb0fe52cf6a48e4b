"""`omni-rl build-preferences`: rejection sampling for MPO.

n candidates per prompt from the policy, each scored by the row's verifier; a candidate is *accepted* when its score
is >= `preferences.accept_threshold` and *rejected* when it is < `preferences.reject_threshold`. Identical responses
are counted once. Up to `preferences.max_pairs_per_prompt` (chosen, rejected) pairs per prompt: the best accepted
with the worst rejected, then the next of each (`make_pairs`). Prompts with no accepted or no rejected candidate give
no pair and are counted. Phase 1 (`candidates.jsonl`, one line per prompt, resumable) is the filter's streaming loop;
`preferences.from_filter=DIR` takes the candidates from a filter run made with `filter.keep_responses=true`
instead of generating. Phase 2 writes `pairs.jsonl` (input order) and `report.json` / `report.md`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from omni_rl.config.schema import OmniRLConfig
from omni_rl.data.loading import iter_samples
from omni_rl.jobs.generate import (FINGERPRINT_KEYS, REJECTS, base_record, data_path, generate_and_score,
                                   job_fingerprint, run_job)
from omni_rl.jobs.rows import portable_row
from omni_rl.jobs.store import JOB_FILE, JobConfigMismatch, JobDir, describe_diff, read_records
from omni_rl.verifiers import load_plugins

CANDIDATES = "candidates.jsonl"
OUTPUTS = ("pairs.jsonl", "report.json", "report.md")
PREF_KEYS = FINGERPRINT_KEYS + ("preferences.n", "preferences.score", "preferences.from_filter")


@dataclass
class Pairing:
    pairs: list[tuple[int, int]]  # (chosen index, rejected index) into the candidates
    accepted: int  # distinct accepted responses
    rejected: int  # distinct rejected responses
    duplicates: int  # candidates whose text (stripped) repeats an earlier one


def make_pairs(responses: list[str], scores: list[float], *, accept: float, reject: float,
               max_pairs: int) -> Pairing:
    """Pairs of distinct responses: accepted ones sorted best first, rejected ones worst first (ties: earlier
    candidate first); pair j = (accepted[j % A], rejected[j % R]) for j < min(max_pairs, max(A, R)), so no pair
    repeats and every accepted / rejected response is used before any is reused."""
    seen: set[str] = set()
    uniq: list[int] = []
    for i, text in enumerate(responses):
        key = text.strip()
        if key in seen:
            continue
        seen.add(key)
        uniq.append(i)
    acc = sorted((i for i in uniq if scores[i] >= accept), key=lambda i: (-scores[i], i))
    rej = sorted((i for i in uniq if scores[i] < reject), key=lambda i: (scores[i], i))
    k = min(max_pairs, max(len(acc), len(rej))) if acc and rej else 0
    return Pairing(pairs=[(acc[j % len(acc)], rej[j % len(rej)]) for j in range(k)], accepted=len(acc),
                   rejected=len(rej), duplicates=len(responses) - len(uniq))


def run_build_preferences(cfg: OmniRLConfig, console: Console | None = None) -> int:
    console = console or Console(highlight=False, soft_wrap=True)  # summary lines stay whole in logs
    load_plugins(cfg.verify.plugins)  # rows may name the verifiers these register; a bad plugin fails here
    p = cfg.preferences
    source_dir = check_filter_dir(cfg, Path(p.from_filter)) if p.from_filter else None
    job = JobDir(cfg.run.output_dir, job="build-preferences", fingerprint=job_fingerprint(cfg, PREF_KEYS),
                 records=(CANDIDATES, REJECTS), outputs=OUTPUTS, overwrite=p.overwrite,
                 overwrite_key="preferences.overwrite")
    console.print(f"build-preferences: output dir {job.path}" + (" (resuming)" if job.resumed else ""))
    if source_dir is not None:
        record_file = "scores.jsonl"
        console.print(f"build-preferences: candidates from the filter run {source_dir} (no generation)")
    else:
        source_dir, record_file = job.path, CANDIDATES

        def body() -> None:
            generate_and_score(cfg, job, record_file=CANDIDATES, n=p.n, prompts_per_call=p.prompts_per_call,
                               calls_per_worker=p.calls_per_worker, console=console, label="build-preferences",
                               make_record=lambda s: base_record(s, kind=p.score, keep_responses=True))

        if not run_job(job, "build-preferences", console, body):
            return 130
    try:
        report = finalize(cfg, job, source_dir, record_file)
    except BaseException:
        job.close("failed")  # the records stay; the next run rebuilds the outputs from them
        raise
    job.close("finished")
    t = report["totals"]
    console.print(f"build-preferences: rows in {t['rows_in']} = prompts with pairs {t['with_pairs']} + no accepted "
                  f"candidate {t['no_accepted']} + no rejected candidate {t['no_rejected']} + rejected "
                  f"{t['rejected']}; {t['pairs']} pairs")
    console.print(f"build-preferences: pairs {job.path / 'pairs.jsonl'}; report {job.path / 'report.md'}")
    return 0


def check_filter_dir(cfg: OmniRLConfig, path: Path) -> Path:
    """A filter output dir whose records hold responses, written from the same data and model as `cfg`."""
    path = path.resolve()
    meta_path = path / JOB_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"preferences.from_filter={path} is not a filter output dir (no {JOB_FILE})")
    meta = json.loads(meta_path.read_text())
    theirs = meta.get("fingerprint", {})
    if meta.get("job") != "filter" or not theirs.get("filter.keep_responses") or theirs.get("filter.rescore_only"):
        raise JobConfigMismatch(f"preferences.from_filter={path} holds no responses (it needs a filter run with "
                                "filter.keep_responses=true and without filter.rescore_only); re-run that filter "
                                "with it, or drop preferences.from_filter to generate")
    if theirs.get("filter.score") != cfg.preferences.score:
        raise JobConfigMismatch(f"preferences.from_filter={path} scored with filter.score={theirs.get('filter.score')}"
                                f" but preferences.score={cfg.preferences.score}: pass the same kind")
    ours = job_fingerprint(cfg, FINGERPRINT_KEYS)
    theirs = {k: v for k, v in theirs.items() if not k.startswith("filter.")}
    if theirs != ours:
        raise JobConfigMismatch(f"preferences.from_filter={path} was run with other model / data / sampling "
                                f"settings ({describe_diff(theirs, ours)}); pass the same ones")
    return path


def finalize(cfg: OmniRLConfig, job: JobDir, source_dir: Path, record_file: str) -> dict[str, Any]:
    p = cfg.preferences
    records = {int(r["pos"]): r for r in read_records(source_dir / record_file)}
    rejects = {int(r["pos"]): r for r in read_records(source_dir / REJECTS)}
    counts: dict[str, int] = defaultdict(int)
    per_prompt = 0  # candidates per prompt (the filter's n when they come from a filter run)
    by_source: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tmp = job.path / "pairs.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        for row in iter_samples(data_path(cfg), check_media=False):
            rec, rej = records.get(row.pos), rejects.get(row.pos)
            if rec is None and rej is None:
                counts["pending"] += 1
                continue
            counts["rows_in"] += 1
            source = (rec or rej).get("source", "(unparsed)")
            by_source[source]["rows_in"] += 1
            if rej is not None:
                outcome = "rejected"
            else:
                pairing = make_pairs(rec["responses"], rec["scores"], accept=p.accept_threshold,
                                     reject=p.reject_threshold, max_pairs=p.max_pairs_per_prompt)
                counts["candidates"] += len(rec["responses"])
                per_prompt = max(per_prompt, len(rec["responses"]))
                counts["duplicates"] += pairing.duplicates
                outcome = ("with_pairs" if pairing.pairs else "no_accepted" if not pairing.accepted
                           else "no_rejected")
                prompt_row = portable_row(row, job.path) if pairing.pairs else None
                for k, (c, r) in enumerate(pairing.pairs):
                    out.write(json.dumps({
                        "id": f"{rec['id']}#{k}", "prompt_id": rec["id"], "source": rec["source"],
                        "modality": rec["modality"], "verifier": rec["verifier"], "prompt": prompt_row,
                        "chosen": rec["responses"][c], "rejected": rec["responses"][r],
                        "chosen_score": rec["scores"][c], "rejected_score": rec["scores"][r],
                        "policy": rec.get("policy")}, ensure_ascii=False) + "\n")
                counts["pairs"] += len(pairing.pairs)
                by_source[source]["pairs"] += len(pairing.pairs)
            counts[outcome] += 1
            by_source[source][outcome] += 1
    tmp.replace(job.path / "pairs.jsonl")
    totals = {k: counts[k] for k in ("rows_in", "with_pairs", "no_accepted", "no_rejected", "rejected", "pairs",
                                     "candidates", "duplicates", "pending")}
    assert totals["rows_in"] == (totals["with_pairs"] + totals["no_accepted"] + totals["no_rejected"]
                                 + totals["rejected"]), totals
    sessions = job.meta["sessions"]
    seconds = sum(float(s.get("seconds", 0.0)) for s in sessions)
    prompts = sum(int(s.get("prompts", 0)) for s in sessions)
    report = {"job": "build-preferences", "data": str(data_path(cfg)), "output_dir": str(job.path),
              "candidates_from": str(source_dir / record_file), "n": per_prompt, "score": p.score,
              "accept_threshold": p.accept_threshold, "reject_threshold": p.reject_threshold,
              "max_pairs_per_prompt": p.max_pairs_per_prompt, "totals": totals,
              "identity": f"rows_in {totals['rows_in']} = with_pairs {totals['with_pairs']} + no_accepted "
                          f"{totals['no_accepted']} + no_rejected {totals['no_rejected']} + rejected "
                          f"{totals['rejected']}",
              "by_source": {k: dict(v) for k, v in sorted(by_source.items())},
              "generation_seconds": round(seconds, 2), "prompts_generated": prompts,
              "prompts_per_s": round(prompts / seconds, 3) if seconds > 0 else None,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (job.path / "report.json").write_text(json.dumps(report, indent=2))
    cols = ["rows_in", "with_pairs", "no_accepted", "no_rejected", "rejected", "pairs"]
    md = [f"# Preference pairs: {Path(report['data']).name}", "", f"- data: `{report['data']}`",
          f"- candidates: `{report['candidates_from']}`",
          f"- accepted: {p.score} >= {p.accept_threshold}; rejected: {p.score} < {p.reject_threshold}; at most "
          f"{p.max_pairs_per_prompt} pairs per prompt; identical responses counted once "
          f"({totals['duplicates']} duplicates of {totals['candidates']} candidates)",
          f"- **{report['identity']}**; {totals['pairs']} pairs", "", "| source | " + " | ".join(cols) + " |",
          "|" + "---|" * (len(cols) + 1)]
    md += [f"| {s} | " + " | ".join(str(v.get(c, 0)) for c in cols) + " |" for s, v in report["by_source"].items()]
    (job.path / "report.md").write_text("\n".join(md) + "\n")
    return report
