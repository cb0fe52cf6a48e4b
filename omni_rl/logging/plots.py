"""PNG plots: a run directory's `metrics.jsonl` (`plot_run`) and a filter job's pass rates (`plot_pass_rates`)."""

from __future__ import annotations

import json
from pathlib import Path

from omni_rl.logging.metrics import read_metrics

PANELS: dict[str, tuple[str, list[str]]] = {
    # file stem: (title, metric-name prefixes or exact names)
    "reward": ("Mean reward (outcome, format)", ["reward/mean", "reward/outcome", "reward/format"]),
    "reward_by_source": ("Reward per source", ["reward/source/"]),
    "reward_by_verifier": ("Reward per verifier", ["reward/verifier/"]),
    "eval_reward": ("Held-out reward, greedy (overall and per source)", ["eval/mean", "eval/source/"]),
    "eval_abstention": ("Held-out abstention rate, greedy (unanswerable rows: right; answerable: false)",
                        ["eval/abstain_rate/"]),
    "mpo_accuracy": ("MPO: preference accuracy (implicit reward chosen > rejected) and margin",
                     ["mpo/accuracy", "mpo/reward_margin"]),
    "mpo_loss": ("MPO loss terms and the BCO shift delta", ["mpo/pref_loss", "mpo/quality_loss", "mpo/sft_loss",
                                                           "mpo/delta"]),
    "clip_fraction": ("GSPO clip fraction", ["train/clip_frac_low", "train/clip_frac_high"]),
    "logprob_mismatch": ("Trainer vs rollout |logp diff| (mean per token)", ["train/logprob_abs_diff_mean"]),
    "step_time": ("Step time split (s)", ["time/"]),
}


SMOOTH_FROM = 60  # series with at least this many points are drawn smoothed


def trailing_mean(ys: list[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= window:
            acc -= ys[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(r["step"])
            ys.append(float(v))
    return xs, ys


def plot_run(run_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r if k != "step"})
    written: list[Path] = []
    for stem, (title, selectors) in PANELS.items():
        chosen = [k for k in keys if any(k == s or (s.endswith("/") and k.startswith(s)) for s in selectors)]
        if not chosen:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in chosen:
            xs, ys = _series(rows, k)
            if not xs:
                continue
            label = k.split("/", 1)[-1] if len(chosen) > 1 else k
            if len(xs) >= SMOOTH_FROM:  # per-step values are noisy (a few prompts each): faint raw + trailing mean
                window = max(2, len(xs) // 20)
                line, = ax.plot(xs, ys, alpha=0.25, linewidth=0.8)
                ax.plot(xs, trailing_mean(ys, window), color=line.get_color(), label=f"{label} ({window}-step mean)")
            else:
                ax.plot(xs, ys, marker=".", label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(chosen) > 1:
            ax.legend(fontsize=7, ncol=2)
        path = out_dir / f"{stem}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def plot_pass_rates(path: Path, rates: dict[str, list[float]], edges: dict[str, list[tuple[float, float, str]]],
                    *, n: int | None) -> Path:
    """One pass-rate histogram per modality (`rates`: modality -> pass rates), with the keep band edges of that
    modality drawn as vertical lines (`edges`: modality -> [(low, high, label)]). With `n` rollouts per prompt the
    bins are centred on the possible rates k/n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = sorted(rates) or ["(none)"]
    fig, axes = plt.subplots(len(mods), 1, figsize=(7, 2.4 * len(mods) + 0.6), squeeze=False)
    bins = [(k - 0.5) / n for k in range(n + 2)] if n else 20
    for ax, mod in zip(axes[:, 0], mods):
        values = rates.get(mod, [])
        ax.hist(values, bins=bins, range=None if n else (0, 1), color="#4c72b0", edgecolor="white")
        for low, high, label in edges.get(mod, []):
            ax.axvline(low, color="#c44e52", linestyle="--", linewidth=1.2)
            ax.axvline(high, color="#c44e52", linestyle="--", linewidth=1.2)
            ax.axvspan(low, high, color="#55a868", alpha=0.12, label=f"keep: {label}")
        ax.set_xlim(-0.07, 1.07)
        ax.set_title(f"{mod}: {len(values)} prompts", fontsize=9)
        ax.set_ylabel("prompts")
        if edges.get(mod):
            ax.legend(fontsize=7, loc="upper center")
    axes[-1, 0].set_xlabel("pass rate of the initial policy")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
