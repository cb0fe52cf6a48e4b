"""curriculum.md and curriculum.png: every stage of a curriculum run side by side, read from the stages' own
metrics.jsonl (nothing is measured twice)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omni_rl.logging.metrics import read_metrics


def window(steps: int) -> int:
    """Steps averaged at each end of a stage: a fifth of it, 1 to 20."""
    return max(1, min(20, steps // 5))


def ends(rows: list[dict[str, Any]], key: str, n: int) -> tuple[float, float] | None:
    """Mean of `key` over the first and the last `n` rows that log it; None when no row does."""
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return None
    first, last = vals[:n], vals[-n:]
    return sum(first) / len(first), sum(last) / len(last)


def stage_summary(key: str, rec: dict[str, Any], stage_dir: Path) -> dict[str, Any]:
    rows = read_metrics(stage_dir / "metrics.jsonl")
    n = window(len(rows))
    out: dict[str, Any] = {"stage": key, "status": rec.get("status"), "from": rec.get("model_path"),
                           "steps": len(rows), "seconds": rec.get("seconds"), "window": n}
    headline = "mpo/accuracy" if any("mpo/accuracy" in r for r in rows) else "reward/mean"
    out["headline"] = (headline, ends(rows, headline, n))
    out["sources"] = {k.split("/", 2)[2]: ends(rows, k, n) for k in sorted({k for r in rows for k in r})
                      if k.startswith("reward/source/")}
    evals = [r for r in rows if "eval/mean" in r]
    out["eval"] = (evals[0]["eval/mean"], evals[-1]["eval/mean"]) if evals else None
    out["eval_sources"] = _first_last(evals, "eval/source/")
    trained = {k.split("/", 2)[2] for r in rows for k in r if k.startswith("reward/modality/")}
    out["untrained_eval"] = {m: v for m, v in _first_last(evals, "eval/modality/").items()
                             if m not in trained} if trained else {}  # RL stages: a preference stage has no reward/*
    drift = rec.get("drift")
    if drift:
        out["moved"] = ", ".join(drift["moved"]) or "none"
        out["frozen"] = ", ".join(drift["frozen"]) or "none"
        out["frozen_moved"] = sorted(set(drift["moved"]) & set(drift["frozen"]))
    report = Path(rec["filter_dir"]) / "report.json" if rec.get("filter_dir") else None
    if report is not None and report.is_file():
        totals = json.loads(report.read_text())["totals"]
        out["filter"] = f"kept {totals['kept']} of {totals['rows_in']}"
    return out


def _first_last(evals: list[dict[str, Any]], prefix: str) -> dict[str, tuple[float, float]]:
    """name -> (first, last evaluation) of the keys `<prefix><name>` that both evaluations log."""
    if not evals:
        return {}
    return {k[len(prefix):]: (evals[0][k], evals[-1][k]) for k in sorted(evals[0])
            if k.startswith(prefix) and k in evals[-1]}


def _pair(v: tuple[float, float] | None) -> str:
    return "-" if v is None else f"{v[0]:.3f} -> {v[1]:.3f}"


def write_report(root: Path, state: dict[str, Any]) -> tuple[Path, Path]:
    keys = list(state["progress"])
    summaries = [stage_summary(k, state["progress"][k], root / k) for k in keys]
    lines = [f"# Curriculum `{state['curriculum']}`", "",
             f"Base model: `{state['base_model']}`. Overrides on every stage: "
             f"`{' '.join(state['overrides']) or '(none)'}`.", "",
             "| stage | starts from | steps | wall s | filter | headline (first -> last window) | held-out eval "
             "(first -> last) | parameter groups changed | frozen by the stage |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        origin = Path(s["from"]).parent.name + "/" + Path(s["from"]).name if s["from"] else "-"
        secs = f"{s['seconds']:.0f}" if s["seconds"] else "-"
        name, val = s["headline"]
        lines.append(f"| {s['stage']} | `{origin}` | {s['steps']} | {secs} | {s.get('filter', '-')} | "
                     f"{name} {_pair(val)} | {_pair(s['eval'])} | {s.get('moved', '-')} | {s.get('frozen', '-')} |")
    lines += ["", "Per source: training reward (first -> last window of each stage) and held-out greedy reward "
              "(first -> last evaluation).", "", "| stage | source | train reward | held-out |", "|---|---|---|---|"]
    for s in summaries:
        for src in sorted(set(s["sources"]) | set(s["eval_sources"])):
            lines.append(f"| {s['stage']} | {src} | {_pair(s['sources'].get(src))} | "
                         f"{_pair(s['eval_sources'].get(src))} |")
    watched = [s for s in summaries if s["untrained_eval"]]
    if watched:
        lines += ["", "Drift: held-out greedy reward on the modalities a stage does not train on, before its first "
                  "update -> after its last (`data.eval_tasks`; the text stages watch image, video, audio and omni "
                  "tasks).", "", "| stage | modality | held-out before -> after | change |", "|---|---|---|---|"]
        for s in watched:
            for mod, (a, b) in s["untrained_eval"].items():
                lines.append(f"| {s['stage']} | {mod} | {a:.3f} -> {b:.3f} | {b - a:+.3f} |")
    broken = [f"{s['stage']} ({', '.join(s['frozen_moved'])})" for s in summaries if s.get("frozen_moved")]
    lines += ["", "Frozen groups that moved: " + ("; ".join(broken) if broken else "none (every frozen group is "
                                                                                  "bit-identical to the stage's start)")]
    md = root / "curriculum.md"
    md.write_text("\n".join(lines) + "\n")
    return md, plot_curriculum(root, keys)


def plot_curriculum(root: Path, keys: list[str]) -> Path:
    """Every stage on one step axis: training reward (or MPO preference accuracy) and the held-out greedy reward,
    with the stage boundaries marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omni_rl.logging.plots import trailing_mean

    fig, ax = plt.subplots(figsize=(10, 4))
    offset = 0
    for i, key in enumerate(keys):
        rows = read_metrics(root / key / "metrics.jsonl")
        if not rows:
            continue
        metric = "mpo/accuracy" if any("mpo/accuracy" in r for r in rows) else "reward/mean"
        xs = [offset + r["step"] for r in rows if metric in r]
        ys = [r[metric] for r in rows if metric in r]
        colour = f"C{i % 10}"
        ax.plot(xs, trailing_mean(ys, window(len(ys))), color=colour, label=f"{key}: {metric}")
        ev = [(offset + r["step"], r["eval/mean"]) for r in rows if "eval/mean" in r]
        if ev:
            ax.plot(*zip(*ev), color=colour, linestyle="--", marker="o", markersize=3, label=f"{key}: held-out")
        ax.axvline(offset, color="grey", alpha=0.4)
        offset += max(r["step"] for r in rows) + 1
    ax.set_xlabel("step (all stages)")
    ax.set_title("Curriculum: training reward / preference accuracy (solid), held-out greedy reward (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    path = root / "curriculum.png"
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
