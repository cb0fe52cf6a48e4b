"""The streaming generate-and-score loop shared by `omni-rl filter` and `omni-rl build-preferences`.

Input rows are read lazily (`omni_rl.data.loading.iter_samples`), each usable row is rendered through the policy's
processor when a rollout worker has room for it, and its n rollouts are scored by the verifier pool as soon as its
chunk comes back. Every input row ends in exactly one record, appended and flushed at once: a scored prompt in the
job's record file, or a reject in `rejects.jsonl`. Records carry the row's position `pos`; a resumed run skips the
positions already recorded. A row's rollouts are seeded by `row_seed(run.seed, id)`, so they do not depend on the
order, the worker, the chunk or the resume point.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from omni_rl.config.schema import OmniRLConfig
from omni_rl.data.loading import Row, count_rows, iter_samples
from omni_rl.data.media import MediaError
from omni_rl.data.types import Prompt, ScoredRollout
from omni_rl.interrupts import sigint_flag
from omni_rl.jobs.store import JobDir, fingerprint
from omni_rl.rollout.group import Chunk
from omni_rl.wiring.cache import suite_path
from omni_rl.wiring.data import render_sample
from omni_rl.wiring.groups import build_rollout_group, init_ray
from omni_rl.wiring.policy import build_policy
from omni_rl.wiring.run import Run
from omni_rl.wiring.verifiers import build_rollout_scorer

REJECTS = "rejects.jsonl"
# What decides a job's outputs (its fingerprint); everything else (workers, timeouts, logging) may change on resume.
FINGERPRINT_KEYS = ("model", "data.path", "data.synthetic_tasks", "data.synthetic_per_task", "data.video_fps",
                    "data.video_max_frames", "data.max_prompt_tokens", "data.seed", "rollout.temperature",
                    "rollout.top_p", "rollout.max_tokens", "rollout.stop", "rollout.max_model_len",
                    "verify.format_weight", "run.seed")


def job_fingerprint(cfg: OmniRLConfig, keys: tuple[str, ...]) -> dict[str, Any]:
    """`fingerprint` of the config with the data location normalised: `data.path` absolute and resolved (another
    spelling of the same file resumes), `data.synthetic_tasks` sorted (the suite sorts them)."""
    d = asdict(cfg)
    if d["data"]["path"] is not None:
        d["data"]["path"] = str(Path(d["data"]["path"]).expanduser().resolve())
    d["data"]["synthetic_tasks"] = sorted(d["data"]["synthetic_tasks"])
    return fingerprint(d, keys)


def run_job(job: JobDir, name: str, console: Console, body: Callable[[], None]) -> bool:
    """Run the job's generation `body`; False when Ctrl-C stopped it (everything written stays usable). Any other
    error abandons a job dir that holds no record yet (`JobDir.abandon`) and is re-raised."""
    try:
        body()
    except KeyboardInterrupt:
        job.close("interrupted")
        console.print(f"{name}: interrupted; every finished prompt is recorded in {job.path}. Re-run the same "
                      "command to continue.")
        return False
    except BaseException:
        job.abandon()
        raise
    return True


def row_seed(run_seed: int, row_id: str) -> int:
    """The vLLM request seed of a row (its k-th rollout uses seed + k): a hash of (run seed, row id)."""
    digest = hashlib.sha256(f"{run_seed}\x00{row_id}".encode()).hexdigest()
    return int(digest[:15], 16)  # < 2**60: seed + k never overflows vLLM's 64-bit seed


@dataclass
class Scored:
    """One scored prompt: its row, its rendered prompt and its n scored rollouts."""

    row: Row
    prompt: Prompt
    rollouts: list[ScoredRollout]
    policy: str  # checkpoint dir that generated the rollouts
    stats: dict[str, int] = field(default_factory=dict)  # verifier errors / timeouts among the n


def data_path(cfg: OmniRLConfig) -> Path:
    return Path(cfg.data.path) if cfg.data.path is not None else suite_path(cfg)


class RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} prompts/s" if speed else "- prompts/s", style="progress.data.speed")


def progress_bar(console: Console, enabled: bool) -> Progress:
    return Progress(TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                    disable=not enabled)


def reject_record(row: Row, reason: str) -> dict[str, Any]:
    """The rejects.jsonl line of a row: the loader's reject (line / index, id, reason, raw row) for a row that did
    not validate, else one with `reason`, plus the row's source / modality / verifier when it validated."""
    if row.reject is not None:
        rec = dict(row.reject)
    else:
        rec = {"line": row.line, "id": row.sample.id if row.sample else None, "reason": reason, "row": row.raw}
        if row.index is not None:
            rec["index"] = row.index
    if row.sample is not None:
        rec.update(source=row.sample.source, modality=row.sample.modality, verifier=row.sample.verifier)
    return {"pos": row.pos, **rec}


def done_positions(job: JobDir, record_file: str) -> set[int]:
    return {int(r["pos"]) for name in (record_file, REJECTS) for r in job.read(name)}


def generate_and_score(cfg: OmniRLConfig, job: JobDir, *, record_file: str, n: int, prompts_per_call: int,
                       calls_per_worker: int, make_record: Callable[[Scored], dict[str, Any]], console: Console,
                       label: str) -> dict[str, float]:
    """Run the job's rollouts for every row not yet recorded; returns counts of this session."""
    path = data_path(cfg)
    done = done_positions(job, record_file)
    total = count_rows(path)
    counts = {"prompts": 0, "rejected": 0, "failed": 0, "verifier_errors": 0, "verifier_timeouts": 0}
    if len(done) >= total:
        console.print(f"{label}: all {total} rows of {path} already recorded in {job.path}")
        return counts
    console.print(f"{label}: {total} rows of {path}, {len(done)} already recorded"
                  + (" (resuming)" if done else ""))
    policy = build_policy(cfg, Run(cfg=cfg, dir=job.path, console=console))
    limit = min(cfg.data.max_prompt_tokens, cfg.rollout.max_model_len - cfg.rollout.max_tokens)

    def reject(row: Row, reason: str) -> None:
        job.append(REJECTS, reject_record(row, reason))
        counts["rejected"] += 1
        bar.advance(task)

    def chunks() -> Iterator[Any]:
        pending: list[tuple[Row, Prompt]] = []
        for row in iter_samples(path, check_media=False):
            if row.pos in done:
                continue
            if row.sample is None:
                reject(row, "")
                continue
            try:
                prompt = render_sample(row.sample, policy, cfg, key_prefix=label)
            except MediaError as e:
                code = "missing_media" if e.missing else "corrupt_media"
                reject(row, f"{code}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 -- one unreadable row must not stop the job
                reject(row, f"render_failed: {type(e).__name__}: {e}")
                continue
            if len(prompt.prompt_ids) > limit:
                reject(row, f"prompt_too_long: {len(prompt.prompt_ids)} tokens > {limit} (data.max_prompt_tokens, "
                            f"or rollout.max_model_len - rollout.max_tokens)")
                continue
            pending.append((row, prompt))
            if len(pending) == prompts_per_call:
                yield Chunk([p.vllm_inputs for _, p in pending], [row_seed(cfg.run.seed, r.sample.id)
                                                                   for r, _ in pending], pending)
                pending = []
        if pending:
            yield Chunk([p.vllm_inputs for _, p in pending], [row_seed(cfg.run.seed, r.sample.id)
                                                               for r, _ in pending], pending)

    init_ray(cfg)
    verifier = build_rollout_scorer(cfg)
    rollout = build_rollout_group(cfg, policy)
    job.session["rollout_nodes"] = list(rollout.node_ids)  # where each worker started (Ray node ids)
    t0 = time.perf_counter()
    try:
        with sigint_flag() as ctrl_c, progress_bar(console, cfg.logging.progress) as bar:
            task = bar.add_task(label, total=total, completed=len(done))
            for result in rollout.stream(chunks(), n=n, calls_per_worker=calls_per_worker):
                ctrl_c.check()  # a Ctrl-C swallowed by a finalizer still stops the job (this chunk is re-run)
                batch: list[tuple[Row, Prompt]] = result.chunk.meta
                if result.groups is None:  # the chunk failed on every retry: its rows are rejected, job goes on
                    for row, _ in batch:
                        reject(row, f"rollout_failed: {result.error}")
                        counts["failed"] += 1
                    continue
                scored, _ = verifier.score_groups([p for _, p in batch], result.groups)
                for (row, prompt), group in zip(batch, scored):
                    stats = {"verifier_errors": sum(1 for r in group if r.verifier_error
                                                    and r.verifier_error != "timeout"),
                             "verifier_timeouts": sum(1 for r in group if r.verifier_error == "timeout")}
                    job.append(record_file, make_record(Scored(row, prompt, group, str(policy.path), stats)))
                    counts["prompts"] += 1
                    counts["verifier_errors"] += stats["verifier_errors"]
                    counts["verifier_timeouts"] += stats["verifier_timeouts"]
                    bar.advance(task)
    finally:
        job.session["seconds"] = round(time.perf_counter() - t0, 3)
        job.session["prompts"] = counts["prompts"]
        job.session["media_bytes_by_node"] = dict(rollout.media_bytes_by_node)
        job.session["replaced_workers"] = rollout.replacements
        rollout.shutdown()
        verifier.close()
    return counts


def outcome_scores(group: list[ScoredRollout], kind: str) -> list[float]:
    return [round(float(r.outcome if kind == "outcome" else r.reward), 6) for r in group]


def base_record(s: Scored, *, kind: str, keep_responses: bool) -> dict[str, Any]:
    """The fields every scored-prompt record has."""
    sample = s.row.sample
    assert sample is not None
    rec: dict[str, Any] = {"pos": s.row.pos, "id": sample.id, "source": sample.source, "modality": sample.modality,
                           "verifier": sample.verifier, "scores": outcome_scores(s.rollouts, kind),
                           "truncated": sum(1 for r in s.rollouts if r.rollout.finish_reason == "length"), **s.stats,
                           "policy": s.policy}
    if keep_responses:
        rec["responses"] = [r.rollout.text for r in s.rollouts]
    return rec

