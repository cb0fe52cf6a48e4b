#!/usr/bin/env python
"""`omni-rl filter` benchmark: four ratios, each measured side by side in one run of this script (a noisy machine
moves absolute seconds; ratios of runs made minutes apart on the same box move much less).

  overhead   filter prompts/s (report.json `prompts_per_s`: the generation phase, engine start excluded) vs a bare
             `vllm.LLM.generate` of the same prompts in one process: the same checkpoint, the same rendered inputs
             (`iter_samples` + `render_sample`, as the filter sends them), the same per-row seeds, banned tokens and
             sampling (rollout.temperature / top_p / max_tokens, `SamplingParams(n=filter.n)`, one request per
             prompt, all prompts in ONE `generate` call), an engine built with the kwargs the rollout workers get
             (a `RolloutWorker` in-process, VLLM_ENABLE_V1_MULTIPROCESSING=0, `--bare-threads` OpenMP threads: 1
             is what Ray gives a 1-CPU rollout actor). Only the `generate` call is timed. Overhead = bare prompts/s
             / filter prompts/s (= filter time / bare time; goal <= 1.15x). The filter's figure includes rendering,
             Ray transfers and verifier scoring, overlapped with generation; the bare side's rendering and scoring
             times are printed next to it.
  workers    filter prompts/s with rollout.num_workers=2 over num_workers=1 (the overhead run). On a 2-core box
             the two engines share the cores with the driver and the verifier pool: expect little gain.
  memory     peak RSS (VmHWM) of the `omni-rl filter` driver process on --rows-small vs --rows-large text rows
             (generated here; stage text_rl_1, the tiny text model, --memory-n rollouts of --memory-max-tokens
             tokens, --memory-prompts-per-call prompts per worker call; goal: flat, ratio ~1.0). Polled from
             /proc every 50 ms; the engine and the verifiers run in other processes and are not counted.
  resume     the overhead run is the uninterrupted run (wall T_full, process start to exit). The same command is
             started again in another output dir, SIGKILLed (its whole process group) once half of the rows are
             in scores.jsonl, and re-run to completion. Ratio = (killed wall + resumed wall) / T_full; the startup
             (process start to first record) of each run is printed too: the overhead should be about one extra
             startup. The resumed scores.jsonl is compared with the uninterrupted one (ids, scores, pass rates).

Every filter run is `python -m omni_rl.cli filter ...` in its own process (logging.progress=false,
logging.wandb_mode=disabled) with its output dir and log under --out; figures go to <out>/bench_filter.json.

    .venv/bin/python scripts/bench_filter.py                                    # all four (about 12 min on 2 cores)
    .venv/bin/python scripts/bench_filter.py --skip memory,resume               # overhead + workers only
    .venv/bin/python scripts/bench_filter.py --prompts 64 --rows-small 100 --rows-large 400    # a quick check
    .venv/bin/python scripts/bench_filter.py --stage image_rl filter.n=4        # extra overrides: image runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ("overhead", "workers", "memory", "resume")
OVERHEAD_GOAL = 1.15  # bare prompts/s over filter prompts/s
POLL_S = 0.05
TEXT_INSTRUCTION = "Think briefly inside <think></think>, then give the final answer in \\boxed{}."


# ------------------------------------------------------------------------------------------------ pure helpers
def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, None when either is missing or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{suffix}"


def parse_skip(text: str) -> set[str]:
    """`--skip memory,workers` -> {"memory", "workers"}; unknown names raise ValueError."""
    names = {s.strip() for s in text.split(",") if s.strip()}
    unknown = names - set(MEASUREMENTS)
    if unknown:
        raise ValueError(f"unknown measurement(s) {sorted(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    return names


def text_row(i: int) -> dict[str, Any]:
    """Row i of the memory data: a sum of two numbers in [0, 20] (as the synthetic text_math task asks it)."""
    a, b = (i * 7) % 21, (i * 13 + 5) % 21
    return {"id": f"t{i}", "source": "sums",
            "messages": [{"role": "user", "content": f"What is {a} + {b}? {TEXT_INSTRUCTION}"}],
            "verifier": "mathruler", "answer": str(a + b)}


def filter_cmd(overrides: Sequence[str], out_dir: Path) -> list[str]:
    """The `omni-rl filter` command line of one run."""
    return [sys.executable, "-m", "omni_rl.cli", "filter", *overrides, "logging.progress=false",
            "logging.wandb_mode=disabled", f"run.output_dir={out_dir}"]


def compare_scores(full: Sequence[dict[str, Any]], resumed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Score records of an uninterrupted and a resumed run, matched by id (their line order differs)."""
    a = {r["id"]: r for r in full}
    b = {r["id"]: r for r in resumed}
    both = a.keys() & b.keys()
    out = {"records_full": len(full), "records_resumed": len(resumed),
           "duplicates_full": len(full) - len(a), "duplicates_resumed": len(resumed) - len(b),
           "only_in_full": len(a.keys() - b.keys()), "only_in_resumed": len(b.keys() - a.keys()),
           "pass_rate_mismatches": sum(1 for k in both if a[k]["pass_rate"] != b[k]["pass_rate"]),
           "score_mismatches": sum(1 for k in both if a[k].get("scores") != b[k].get("scores"))}
    out["identical"] = not any(v for k, v in out.items() if not k.startswith("records"))
    return out


def overhead_figures(filter_pps: float | None, bare_pps: float | None) -> dict[str, Any]:
    over = ratio(bare_pps, filter_pps)
    return {"filter_prompts_per_s": filter_pps, "bare_prompts_per_s": bare_pps, "overhead": over,
            "goal": OVERHEAD_GOAL, "meets_goal": None if over is None else over <= OVERHEAD_GOAL}


def workers_figures(pps_1: float | None, pps_2: float | None) -> dict[str, Any]:
    return {"prompts_per_s_1": pps_1, "prompts_per_s_2": pps_2, "speedup": ratio(pps_2, pps_1)}


def memory_figures(rows_small: int, mib_small: float | None, rows_large: int, mib_large: float | None
                   ) -> dict[str, Any]:
    growth = None if mib_small is None or mib_large is None else mib_large - mib_small
    return {"rows_small": rows_small, "rows_large": rows_large, "peak_mib_small": mib_small,
            "peak_mib_large": mib_large, "ratio": ratio(mib_large, mib_small),
            "mib_per_1k_rows": ratio(None if growth is None else growth * 1000, rows_large - rows_small)}


def resume_figures(full_s: float, killed_s: float, resumed_s: float, startup_full: float | None,
                   startup_resumed: float | None) -> dict[str, Any]:
    return {"full_wall_s": full_s, "killed_wall_s": killed_s, "resumed_wall_s": resumed_s,
            "ratio": ratio(killed_s + resumed_s, full_s), "extra_s": killed_s + resumed_s - full_s,
            "startup_full_s": startup_full, "startup_resumed_s": startup_resumed}


def report_lines(fig: dict[str, Any]) -> list[str]:
    """The printed summary of the figures in `fig` (keys: overhead, workers, memory, resume; any may be absent)."""
    lines = []
    if "overhead" in fig:
        o = fig["overhead"]
        verdict = "" if o["meets_goal"] is None else (" ok" if o["meets_goal"] else " ABOVE GOAL")
        lines += [f"overhead vs bare vLLM   filter {fmt(o['filter_prompts_per_s'])} prompts/s, bare "
                  f"{fmt(o['bare_prompts_per_s'])} prompts/s -> bare/filter {fmt(o['overhead'], '.3f', 'x')} "
                  f"(goal <= {o['goal']:.2f}x){verdict}",
                  "                        (the filter's figure includes rendering, Ray transfers and verifier "
                  "scoring, overlapped with generation)"]
        if o.get("bare_render_s") is not None:
            lines.append(f"                        bare side, not overlapped: rendering {o['bare_render_s']:.2f} s, "
                         f"generation {o['bare_generate_s']:.2f} s, scoring {o['bare_score_s']:.2f} s")
    if "workers" in fig:
        w = fig["workers"]
        lines.append(f"2 rollout workers vs 1 {fmt(w['prompts_per_s_2'])} vs {fmt(w['prompts_per_s_1'])} prompts/s "
                     f"-> x{fmt(w['speedup'], '.3f')}")
    if "memory" in fig:
        m = fig["memory"]
        lines.append(f"driver peak RSS         {m['rows_small']:,} rows {fmt(m['peak_mib_small'], '.0f')} MiB, "
                     f"{m['rows_large']:,} rows {fmt(m['peak_mib_large'], '.0f')} MiB -> x"
                     f"{fmt(m['ratio'], '.3f')} ({fmt(m['mib_per_1k_rows'], '+.1f')} MiB per 1k rows; goal: flat)")
    if "resume" in fig:
        r = fig["resume"]
        lines += [f"kill + resume vs full   ({r['killed_wall_s']:.1f} + {r['resumed_wall_s']:.1f}) s / "
                  f"{r['full_wall_s']:.1f} s -> x{fmt(r['ratio'], '.3f')} (extra {r['extra_s']:+.1f} s; startup to "
                  f"first record: full {fmt(r['startup_full_s'], '.1f', ' s')}, resumed "
                  f"{fmt(r['startup_resumed_s'], '.1f', ' s')})"]
        c = r.get("compare")
        if c is not None:
            lines.append(f"                        resumed scores.jsonl vs uninterrupted: "
                         f"{'IDENTICAL' if c['identical'] else 'DIFFERENT'} ({c['records_resumed']} vs "
                         f"{c['records_full']} records; only in one: {c['only_in_full']} + {c['only_in_resumed']}; "
                         f"pass-rate mismatches {c['pass_rate_mismatches']}, score mismatches "
                         f"{c['score_mismatches']}, duplicates {c['duplicates_resumed']})")
    return lines


# ----------------------------------------------------------------------------------------------- process runs
@dataclass
class FilterRun:
    """One `omni-rl filter` process: wall seconds (start to exit, or to the kill), seconds to its first new record,
    peak RSS of the process itself, and its report.json (None when it did not finish)."""

    name: str
    cmd: list[str]
    wall_s: float
    returncode: int
    killed: bool
    first_record_s: float | None
    peak_rss_mib: float | None
    records: int
    report: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def prompts_per_s(self) -> float | None:
        return None if self.report is None else self.report.get("prompts_per_s")


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set size) of process `pid`, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 -- psutil missing or the process already gone
        return []


def child_env(threads: int | None = None) -> dict[str, str]:
    env = {**os.environ, "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_filter(name: str, overrides: Sequence[str], out: Path, *, run_dir: Path | None = None, fresh: bool = True,
               kill_at: int | None = None) -> FilterRun:
    """Run the filter CLI into `run_dir` (default `out / name`; emptied first when `fresh`), its log in
    `out / <name>.log`; with `kill_at`, SIGKILL its process group once scores.jsonl holds that many records."""
    run_dir = run_dir or out / name
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    scores = run_dir / "scores.jsonl"
    cmd = filter_cmd(overrides, run_dir)
    start_lines = count_lines(scores)
    log_path = out / f"{name}.log"
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        peak, first, killed, size, lines = None, None, False, -1, start_lines
        while proc.poll() is None:
            rss = peak_rss_mib(proc.pid)
            peak = rss if rss is not None else peak
            new_size = scores.stat().st_size if scores.is_file() else 0
            if new_size != size and (first is None or kill_at is not None):
                size, lines = new_size, count_lines(scores)
                if first is None and lines > start_lines:
                    first = time.perf_counter() - t0
                if kill_at is not None and lines >= kill_at:
                    kill_group(proc)
                    killed = True
                    break
            time.sleep(POLL_S)
        rc = proc.wait()
        wall = time.perf_counter() - t0
    if first is None and count_lines(scores) > start_lines:
        first = wall  # the first record came within the last poll interval
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text()) if rc == 0 and report_path.is_file() else None
    if rc != 0 and not killed:
        sys.exit(f"filter run `{name}` failed (exit {rc}): {' '.join(cmd)}\nlog: {log_path}")
    return FilterRun(name, cmd, wall, rc, killed, first, peak, count_lines(scores), report)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the filter's process group, then any of its descendants that left the group (by pid)."""
    kids = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    alive = kids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        time.sleep(0.2)
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def run_child(mode: str, overrides: Sequence[str], out: Path, *, threads: int | None = None) -> dict[str, Any]:
    """This script in `--child-mode` (a fresh process): `prepare` builds / loads the stage's policy (so the timed
    runs never include a model build or warm start); `bare` times bare vLLM."""
    result = out / f"child_{mode}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-mode", mode, "--child-result", str(result),
           "--out", str(out), *overrides]
    with open(out / f"child_{mode}.log", "a") as log:
        p = subprocess.run(cmd, cwd=ROOT, env=child_env(threads), stdout=log, stderr=subprocess.STDOUT)
    if p.returncode != 0 or not result.is_file():
        sys.exit(f"`{mode}` failed (exit {p.returncode}): {' '.join(cmd)}\nlog: {out / f'child_{mode}.log'}")
    return json.loads(result.read_text())


# --------------------------------------------------------------------------------------- in the child process
def child_main(mode: str, overrides: Sequence[str], result: Path, out: Path) -> None:
    if mode == "bare":  # the environment a CPU rollout actor gets, before vLLM is imported
        from omni_rl.rollout.group import QUIET_ENV
        from omni_rl.rollout.worker import CPU_ENV, ENGINE_ENV, on_gpu

        os.environ.update({**ENGINE_ENV, **QUIET_ENV, **({} if on_gpu() else CPU_ENV)})
    from rich.console import Console

    from omni_rl.config import compose_config
    from omni_rl.jobs.generate import data_path
    from omni_rl.wiring.policy import build_policy
    from omni_rl.wiring.run import Run

    cfg = compose_config(list(overrides))
    policy = build_policy(cfg, Run(cfg=cfg, dir=out, console=Console(highlight=False)))
    info: dict[str, Any] = {"policy": str(policy.path), "data": str(data_path(cfg)), "n": cfg.filter.n,
                            "max_tokens": cfg.rollout.max_tokens, "temperature": cfg.rollout.temperature,
                            "top_p": cfg.rollout.top_p}
    if mode == "bare":
        info.update(bare_generate(cfg, policy))
    result.write_text(json.dumps(info, indent=2))


def bare_generate(cfg: Any, policy: Any) -> dict[str, Any]:
    """Render what the filter sends, then time ONE `LLM.generate` of all prompts (n rollouts each) and, apart,
    scoring them with the verifier pool."""
    import torch
    from vllm import SamplingParams

    from omni_rl.data.loading import iter_samples
    from omni_rl.jobs.generate import data_path, row_seed
    from omni_rl.rollout.worker import BAN_BIAS, RolloutWorker
    from omni_rl.wiring.data import render_sample
    from omni_rl.wiring.groups import mm_limits
    from omni_rl.wiring.verifiers import build_rollout_scorer

    r = cfg.rollout
    limit = min(cfg.data.max_prompt_tokens, r.max_model_len - r.max_tokens)
    t = time.perf_counter()
    prompts, seeds = [], []
    for row in iter_samples(data_path(cfg), check_media=False):
        if row.sample is None:
            continue
        prompt = render_sample(row.sample, policy, cfg, key_prefix="filter")  # the filter's label
        if len(prompt.prompt_ids) <= limit:
            prompts.append(prompt)
            seeds.append(row_seed(cfg.run.seed, row.sample.id))
    render_s = time.perf_counter() - t
    # the engine kwargs `build_rollout_group` gives every rollout worker
    worker = RolloutWorker(str(policy.path), family=policy.family, seed=cfg.run.seed, dtype=cfg.model.dtype,
                           max_model_len=r.max_model_len, kv_cache_gib=r.kv_cache_gib, gpu_memory_utilization=r.gpu_memory_utilization,
                           tensor_parallel_size=r.tensor_parallel_size, enforce_eager=r.enforce_eager,
                           limit_mm_per_prompt=mm_limits(policy.family))
    inputs = [worker._versioned_media_keys(p.vllm_inputs) for p in prompts]  # what the worker hands vLLM
    bias = {int(tok): BAN_BIAS for tok in policy.banned_token_ids} or None
    n = cfg.filter.n
    params = [SamplingParams(n=n, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens,
                             stop=list(r.stop), logprobs=0, logit_bias=bias, seed=s, skip_special_tokens=False,
                             spaces_between_special_tokens=False) for s in seeds]
    t = time.perf_counter()
    outputs = worker.llm.generate(inputs, params, use_tqdm=False)
    generate_s = time.perf_counter() - t
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    groups = [[worker._rollout(i, c) for c in o.outputs] for i, o in enumerate(outputs)]
    pool = build_rollout_scorer(cfg)
    t = time.perf_counter()
    pool.score_groups(prompts, groups)
    score_s = time.perf_counter() - t
    pool.close()
    return {"prompts": len(prompts), "render_s": render_s, "generate_s": generate_s, "score_s": score_s,
            "tokens": tokens, "engine_start_s": worker.start_seconds, "torch_threads": torch.get_num_threads(),
            "prompts_per_s": len(prompts) / generate_s, "tokens_per_s": tokens / generate_s}


# ------------------------------------------------------------------------------------------------------ main
def image_data(out: Path, source: Path, prompts: int) -> Path:
    """The first `prompts` rows of the stage's data file, with its media dir linked next to them."""
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"first{prompts}.jsonl"
    with open(source) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i >= prompts:
                break
            dst.write(line)
    link = data_dir / "media"
    if not link.exists():
        link.symlink_to(source.parent / "media", target_is_directory=True)
    return path


def write_text_rows(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(rows):
            f.write(json.dumps(text_row(i)) + "\n")
    return path


def describe(run: FilterRun) -> str:
    gen = "" if run.report is None else (f", generation {run.report['generation_seconds']} s -> "
                                         f"{fmt(run.prompts_per_s)} prompts/s")
    return (f"  {run.name}: wall {run.wall_s:.1f} s, first record after {fmt(run.first_record_s, '.1f', ' s')}, "
            f"{run.records} records{gen}, driver peak RSS {fmt(run.peak_rss_mib, '.0f', ' MiB')}"
            + (" (killed)" if run.killed else ""))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="image_rl", help="stage of the overhead / workers / resume runs (default "
                                                        "image_rl: 256 image prompts)")
    ap.add_argument("--prompts", type=int, default=0,
                    help="overhead / workers / resume: only the first N rows of the stage's suite (default 0: all)")
    ap.add_argument("--bare-threads", type=int, default=1,
                    help="OMP_NUM_THREADS of the bare vLLM engine (default 1, what Ray gives a 1-CPU rollout actor)")
    ap.add_argument("--rows-small", type=int, default=1000, help="memory: rows of the small text file (default 1000)")
    ap.add_argument("--rows-large", type=int, default=10000,
                    help="memory: rows of the large text file (default 10000)")
    ap.add_argument("--memory-stage", default="text_rl_1", help="memory: stage (default text_rl_1, the text model)")
    ap.add_argument("--memory-n", type=int, default=2, help="memory: filter.n (default 2)")
    ap.add_argument("--memory-max-tokens", type=int, default=16, help="memory: rollout.max_tokens (default 16)")
    ap.add_argument("--memory-prompts-per-call", type=int, default=32,
                    help="memory: filter.prompts_per_call (default 32: short text rollouts are bound by the cost per "
                         "call; 32 runs about twice as fast as the default 8)")
    ap.add_argument("--skip", default="", help=f"comma-separated measurements to leave out: {', '.join(MEASUREMENTS)}")
    ap.add_argument("--out", default="outputs/bench_filter", help="run dirs, logs, data and bench_filter.json")
    ap.add_argument("--child-mode", choices=("prepare", "bare"), help=argparse.SUPPRESS)
    ap.add_argument("--child-result", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the overhead / workers / resume runs")
    args = ap.parse_args(argv)
    try:
        args.skip = parse_skip(args.skip)
    except ValueError as e:
        ap.error(str(e))
    return args


def main() -> None:
    args = parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.child_mode:
        child_main(args.child_mode, args.overrides, Path(args.child_result), out)
        return

    chosen = [m for m in MEASUREMENTS if m not in args.skip]
    fig: dict[str, Any] = {}
    runs: dict[str, FilterRun] = {}
    base = [f"stage={args.stage}", *args.overrides]
    t_start = time.perf_counter()
    if {"overhead", "workers", "resume"} & set(chosen):
        info = run_child("prepare", base, out)  # model build / warm start, if not cached yet
        if args.prompts > 0:
            base.append(f"data.path={image_data(out, Path(info['data']), args.prompts)}")
        print(f"== {args.stage}: {info['data'] if args.prompts <= 0 else f'first {args.prompts} rows'}; filter.n "
              f"{info['n']}, rollout.max_tokens {info['max_tokens']}, temperature {info['temperature']}, top_p "
              f"{info['top_p']} ==", flush=True)
        runs["w1"] = run_filter("w1", [*base, "rollout.num_workers=1"], out)
        print(describe(runs["w1"]), flush=True)
    if "overhead" in chosen:
        bare = run_child("bare", base, out, threads=args.bare_threads)
        print(f"  bare vLLM: {bare['prompts']} prompts x n {bare['n']} in {bare['generate_s']:.1f} s -> "
              f"{bare['prompts_per_s']:.2f} prompts/s ({bare['tokens_per_s']:.0f} tokens/s, {bare['torch_threads']} "
              f"thread(s); engine start {bare['engine_start_s']:.1f} s, not counted)", flush=True)
        fig["overhead"] = {**overhead_figures(runs["w1"].prompts_per_s, bare["prompts_per_s"]),
                           "bare_render_s": bare["render_s"], "bare_generate_s": bare["generate_s"],
                           "bare_score_s": bare["score_s"], "bare": bare}
    if "workers" in chosen:
        runs["w2"] = run_filter("w2", [*base, "rollout.num_workers=2"], out)
        print(describe(runs["w2"]), flush=True)
        fig["workers"] = workers_figures(runs["w1"].prompts_per_s, runs["w2"].prompts_per_s)
    if "resume" in chosen:
        full = runs["w1"]
        cmd = [*base, "rollout.num_workers=1"]
        runs["killed"] = run_filter("killed", cmd, out, run_dir=out / "resumed", kill_at=max(1, full.records // 2))
        print(describe(runs["killed"]) + f" at {runs['killed'].records} of {full.records} records", flush=True)
        runs["resumed"] = run_filter("resumed", cmd, out, fresh=False)
        print(describe(runs["resumed"]), flush=True)
        from omni_rl.jobs.store import read_records

        fig["resume"] = {**resume_figures(full.wall_s, runs["killed"].wall_s, runs["resumed"].wall_s,
                                          full.first_record_s, runs["resumed"].first_record_s),
                         "killed_at_records": runs["killed"].records, "was_killed": runs["killed"].killed,
                         "startup_killed_s": runs["killed"].first_record_s,
                         "compare": compare_scores(list(read_records(out / "w1" / "scores.jsonl")),
                                                   list(read_records(out / "resumed" / "scores.jsonl")))}
    if "memory" in chosen:
        mem = [f"stage={args.memory_stage}", f"filter.n={args.memory_n}",
               f"rollout.max_tokens={args.memory_max_tokens}",
               f"filter.prompts_per_call={args.memory_prompts_per_call}", "rollout.num_workers=1"]
        small = write_text_rows(out / "data" / f"text{args.rows_small}.jsonl", args.rows_small)
        large = write_text_rows(out / "data" / f"text{args.rows_large}.jsonl", args.rows_large)
        run_child("prepare", [*mem, f"data.path={small}"], out)
        print(f"== memory: {args.memory_stage}, text rows, filter.n {args.memory_n}, rollout.max_tokens "
              f"{args.memory_max_tokens}, filter.prompts_per_call {args.memory_prompts_per_call} ==", flush=True)
        for name, path in (("mem_small", small), ("mem_large", large)):
            runs[name] = run_filter(name, [*mem, f"data.path={path}"], out)
            print(describe(runs[name]), flush=True)
        fig["memory"] = {**memory_figures(args.rows_small, runs["mem_small"].peak_rss_mib, args.rows_large,
                                          runs["mem_large"].peak_rss_mib),
                         "n": args.memory_n, "max_tokens": args.memory_max_tokens,
                         "prompts_per_call": args.memory_prompts_per_call,
                         "prompts_per_s_small": runs["mem_small"].prompts_per_s,
                         "prompts_per_s_large": runs["mem_large"].prompts_per_s}

    total = time.perf_counter() - t_start
    print(f"\n== omni-rl filter benchmark ({total / 60:.1f} min) ==")
    for line in report_lines(fig):
        print(line)
    result = {"stage": args.stage, "overrides": base, "figures": fig, "seconds": round(total, 1),
              "runs": {k: {**{f: v for f, v in asdict(r).items() if f != "report"},
                           "prompts_per_s": r.prompts_per_s,
                           "generation_seconds": (r.report or {}).get("generation_seconds"),
                           "totals": (r.report or {}).get("totals")} for k, r in runs.items()}}
    (out / "bench_filter.json").write_text(json.dumps(result, indent=2))
    print(f"written: {out / 'bench_filter.json'}")


if __name__ == "__main__":
    main()
