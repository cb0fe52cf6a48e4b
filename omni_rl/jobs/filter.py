"""`omni-rl filter`: the pass rate of the stage's initial policy on every prompt, and the rows inside the keep band.

    phase 1  n rollouts per usable row (streamed, sharded over the rollout workers, resumable): scores.jsonl
             (one line per scored prompt) and rejects.jsonl (one line per unusable row, with the reason);
    phase 2  the rows are read again in order and banded: kept.jsonl (kept rows, unchanged except `pass_rate`,
             media paths valid from the output dir), report.json / report.md, plots/pass_rate.png.

Phase 2 is rebuilt from the records on every run, so changing only the bands and re-running the same command
re-bands without generating. `filter.rescore_only=true` skips generation and uses the rows' own `pass_rate`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from statistics import fmean
from typing import Any

from rich.console import Console

from omni_rl.config.schema import OmniRLConfig
from omni_rl.data.loading import iter_samples
from omni_rl.jobs.bands import KEPT, Band, Tally, band_for, bands_from_config, pass_rate, success_threshold
from omni_rl.jobs.generate import (FINGERPRINT_KEYS, REJECTS, Scored, base_record, data_path, generate_and_score,
                                   job_fingerprint, reject_record, run_job)
from omni_rl.jobs.rows import portable_row
from omni_rl.jobs.store import JobDir
from omni_rl.verifiers import load_plugins

SCORES = "scores.jsonl"
OUTPUTS = ("kept.jsonl", "report.json", "report.md", "plots")
FILTER_KEYS = FINGERPRINT_KEYS + ("filter.n", "filter.score", "filter.success_threshold", "filter.verifier_thresholds",
                                  "filter.rescore_only", "filter.keep_responses")
UNPARSED = "(unparsed)"


def run_filter(cfg: OmniRLConfig, console: Console | None = None) -> int:
    """Run (or resume) the filter job of `cfg`; returns the process exit code (130 when interrupted)."""
    console = console or Console(highlight=False, soft_wrap=True)  # summary lines stay whole in logs
    load_plugins(cfg.verify.plugins)  # rows may name the verifiers these register; a bad plugin fails here
    f = cfg.filter
    bands = bands_from_config(f.band_preset, f.bands)  # bad bands fail before any model starts
    job = JobDir(cfg.run.output_dir, job="filter", fingerprint=job_fingerprint(cfg, FILTER_KEYS),
                 records=(SCORES, REJECTS), outputs=OUTPUTS, overwrite=f.overwrite, overwrite_key="filter.overwrite")
    console.print(f"filter: output dir {job.path}" + (" (resuming)" if job.resumed else ""))

    def record(s: Scored) -> dict[str, Any]:
        rec = base_record(s, kind=f.score, keep_responses=f.keep_responses)
        threshold = success_threshold(rec["verifier"], f.success_threshold, f.verifier_thresholds)
        return {**rec, "pass_rate": pass_rate(rec["scores"], threshold), "threshold": threshold}

    def body() -> None:
        if f.rescore_only:
            rescore(cfg, job)
        else:
            generate_and_score(cfg, job, record_file=SCORES, n=f.n, prompts_per_call=f.prompts_per_call,
                               calls_per_worker=f.calls_per_worker, make_record=record, console=console,
                               label="filter")

    if not run_job(job, "filter", console, body):
        return 130
    try:
        report = finalize(cfg, job, bands)
    except BaseException:
        job.close("failed")  # the records stay; the next run rebuilds the outputs from them
        raise
    job.close("finished")
    t = report["totals"]
    console.print(f"filter: rows in {t['rows_in']} = kept {t['kept']} + filtered out {t['filtered_out']} "
                  f"(too easy {t['too_easy']}, too hard {t['too_hard']}) + rejected {t['rejected']}; "
                  f"mean pass rate {t['mean_pass_rate']}")
    console.print(f"filter: kept rows {job.path / 'kept.jsonl'}; report {job.path / 'report.md'}; "
                  f"plot {job.path / 'plots' / 'pass_rate.png'}")
    return 0


def rescore(cfg: OmniRLConfig, job: JobDir) -> None:
    """Records from the rows' own `pass_rate` (no generation); rows without one are rejected."""
    done = {int(r["pos"]) for name in (SCORES, REJECTS) for r in job.read(name)}
    for row in iter_samples(data_path(cfg), check_media=False):
        if row.pos in done:
            continue
        if row.sample is None:
            job.append(REJECTS, reject_record(row, ""))
        elif row.sample.pass_rate is None:
            job.append(REJECTS, reject_record(row, "no_pass_rate: filter.rescore_only=true needs rows with a "
                                                   "pass_rate (e.g. a previous filter run's kept.jsonl)"))
        else:
            s = row.sample
            job.append(SCORES, {"pos": row.pos, "id": s.id, "source": s.source, "modality": s.modality,
                                "verifier": s.verifier, "pass_rate": s.pass_rate, "scores": None, "rescored": True})


def finalize(cfg: OmniRLConfig, job: JobDir, bands: list[Band]) -> dict[str, Any]:
    """Band every scored row, write kept.jsonl / report.json / report.md / plots/pass_rate.png; the report."""
    from omni_rl.logging.plots import plot_pass_rates

    keep = ("source", "modality", "verifier", "pass_rate", "verifier_errors", "verifier_timeouts", "truncated")
    scores = {}  # no responses held; mean_score: None for rows re-banded from a stored pass rate
    for r in job.read(SCORES):
        scores[int(r["pos"])] = {**{k: r.get(k) for k in keep},
                                 "mean_score": fmean(r["scores"]) if r.get("scores") else None}
    rejects = {int(r["pos"]): {k: r.get(k) for k in ("source", "modality", "verifier", "reason") if k in r}
               for r in job.read(REJECTS)}
    overlap = scores.keys() & rejects.keys()
    assert not overlap, f"rows both scored and rejected: {sorted(overlap)[:5]}"
    totals, groups = Tally(), {"source": defaultdict(Tally), "modality": defaultdict(Tally),
                               "verifier": defaultdict(Tally)}
    rates: dict[str, list[float]] = defaultdict(list)
    pending = 0
    extra = {"verifier_errors": 0, "verifier_timeouts": 0, "truncated_rollouts": 0}
    tmp = job.path / "kept.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as kept:
        for row in iter_samples(data_path(cfg), check_media=False):
            rec = scores.get(row.pos)
            rej = rejects.get(row.pos)
            keys = {"source": rec["source"], "modality": rec["modality"], "verifier": rec["verifier"]} if rec else (
                {"source": rej.get("source", UNPARSED), "modality": rej.get("modality", UNPARSED),
                 "verifier": rej.get("verifier", UNPARSED)} if rej else None)
            if rec is None and rej is None:
                pending += 1
                continue
            if rej is not None:
                outcome, rate, reason = "rejected", None, rej["reason"]
            else:
                rate, reason = float(rec["pass_rate"]), None
                outcome = band_for(bands, **keys).classify(rate)
                rates[keys["modality"]].append(rate)
                for k in extra:
                    extra[k] += int(rec.get(k.replace("_rollouts", ""), 0) or 0)
                if outcome == KEPT:
                    kept.write(json.dumps({**portable_row(row, job.path), "pass_rate": rate}, ensure_ascii=False)
                               + "\n")
            mean_score = rec["mean_score"] if rec else None
            totals.add(outcome, rate, reason, mean_score)
            for name, tallies in groups.items():
                tallies[keys[name]].add(outcome, rate, reason, mean_score)
    tmp.replace(job.path / "kept.jsonl")

    t = totals.as_dict()
    assert t["rows_in"] == t["kept"] + t["filtered_out"] + t["rejected"], t
    sessions = job.meta["sessions"]
    gen_seconds = sum(float(s.get("seconds", 0.0)) for s in sessions)
    gen_prompts = sum(int(s.get("prompts", 0)) for s in sessions)
    f = cfg.filter
    report = {
        "job": "filter", "data": str(data_path(cfg)), "output_dir": str(job.path),
        "n": f.n, "score": f.score, "success_threshold": f.success_threshold,
        "verifier_thresholds": dict(f.verifier_thresholds), "rescore_only": f.rescore_only,
        "bands": [b.describe() for b in bands] + ["otherwise: keep"],
        "totals": {**t, "pending": pending, **extra},
        "identity": f"rows_in {t['rows_in']} = kept {t['kept']} + filtered_out {t['filtered_out']} + rejected "
                    f"{t['rejected']}",
        "by_source": {k: v.as_dict() for k, v in sorted(groups["source"].items())},
        "by_modality": {k: v.as_dict() for k, v in sorted(groups["modality"].items())},
        "by_verifier": {k: v.as_dict() for k, v in sorted(groups["verifier"].items())},
        "generation_seconds": round(gen_seconds, 2), "prompts_generated": gen_prompts,
        "prompts_per_s": round(gen_prompts / gen_seconds, 3) if gen_seconds > 0 else None,
        "sessions": len(sessions), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        # per generating session: the Ray node of each rollout worker at the start, media bytes sent to each node,
        # workers replaced (died or hung)
        "rollout": [{k: s[k] for k in ("rollout_nodes", "media_bytes_by_node", "replaced_workers") if k in s}
                    for s in sessions if "rollout_nodes" in s],
    }
    (job.path / "report.json").write_text(json.dumps(report, indent=2))
    (job.path / "report.md").write_text(report_markdown(report))
    edges = {mod: [(b.low, b.high, b.describe()) for b in bands
                   if not b.modality or mod in b.modality] for mod in rates}
    plot_pass_rates(job.path / "plots" / "pass_rate.png", dict(rates), edges,
                    n=None if f.rescore_only else f.n)
    return report


def report_markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [f"# Filter report: {Path(report['data']).name}", "",
             f"- data: `{report['data']}`",
             ("- pass rates taken from the rows (filter.rescore_only=true)" if report["rescore_only"] else
              f"- {report['n']} rollouts per prompt; a rollout passes when its {report['score']} score >= "
              f"{report['success_threshold']}" + (f" (per verifier: {report['verifier_thresholds']})"
                                                   if report["verifier_thresholds"] else "")),
             "- bands, first match wins: " + "; ".join(report["bands"]),
             f"- **{report['identity']}** (filtered out: too easy {t['too_easy']}, too hard {t['too_hard']})",
             f"- mean pass rate {t['mean_pass_rate']}; verifier errors {t['verifier_errors']}, timeouts "
             f"{t['verifier_timeouts']}; truncated rollouts {t['truncated_rollouts']}",
             f"- generation: {report['prompts_generated']} prompts in {report['generation_seconds']} s "
             f"({report['prompts_per_s'] or '-'} prompts/s) over {report['sessions']} session(s)", ""]
    cols = ["rows_in", "scored", "kept", "too_easy", "too_hard", "rejected", "mean_pass_rate"]
    for title, key in (("Per source", "by_source"), ("Per modality", "by_modality"), ("Per verifier", "by_verifier")):
        lines += [f"## {title}", "", "| name | " + " | ".join(cols) + " | reject reasons |",
                  "|" + "---|" * (len(cols) + 2)]
        for name, row in report[key].items():
            reasons = ", ".join(f"{k} {v}" for k, v in row["reject_reasons"].items()) or "-"
            lines.append(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + f" | {reasons} |")
        lines.append("")
    return "\n".join(lines)
