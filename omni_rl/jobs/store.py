"""The output directory of an offline job: append-only JSONL records, flushed per line, and resume rules.

* `job.json` holds the job name and the *fingerprint*: the config values that decide what the job writes (model,
  data, sampling, verifier settings, seeds, thresholds). Re-running with the same fingerprint continues the job;
  a different one is refused with a one-line error that names the keys that differ (or `overwrite=True` starts
  over, deleting only this job's files).
* Records are appended one line per write and flushed, so a SIGKILL loses at most the line being written; reading
  drops (and truncates) a partial last line. Every record carries the input row position `pos`, which is how a
  resumed run knows what is done.
* One job at a time per directory: the job holds an exclusive `flock` on the directory while it runs (released by
  the kernel when its process dies, so a killed job never leaves a stale lock); a second job on the same directory
  is refused at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from omni_rl.locks import try_lock_dir

JOB_FILE = "job.json"


class JobConfigMismatch(Exception):
    """The directory holds another job, or this job with other settings: the message says what to do."""


class JobBusy(JobConfigMismatch):
    """Another running process holds the directory."""


def lock_dir(path: Path) -> int:
    """`try_lock_dir`, raising JobBusy with what to do when another process holds `path`."""
    fd = try_lock_dir(path)
    if fd is None:
        raise JobBusy(f"{path} is in use by another running process (an omni-rl job with this run.output_dir): wait "
                      "for it to finish (re-running the same command afterwards continues its work), or choose "
                      "another run.output_dir=...")
    return fd


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def fingerprint(cfg_dict: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The flattened config entries under `keys` (each a top-level section or a dotted key), JSON-normalised."""
    flat = flatten(cfg_dict)
    picked = {k: v for k, v in flat.items() if any(k == p or k.startswith(p + ".") for p in keys)}
    return json.loads(json.dumps(picked, sort_keys=True, default=str))


def describe_diff(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}" for k in keys if old.get(k) != new.get(k)]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


class JobDir:
    """`outputs`: the file and folder names this job writes (deleted by `overwrite`); `records`: the append-only
    record files (kept across resumes)."""

    def __init__(self, path: str | os.PathLike, *, job: str, fingerprint: Mapping[str, Any], records: tuple[str, ...],
                 outputs: tuple[str, ...], overwrite: bool = False, overwrite_key: str = "filter.overwrite"):
        self.path = Path(path).resolve()
        self.job = job
        self.records = records
        self._files: dict[str, IO[str]] = {}
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = lock_dir(self.path)
        try:
            self._open(fingerprint, outputs, overwrite, overwrite_key)
        except BaseException:
            self._unlock()
            if created and not any(self.path.iterdir()):
                self.path.rmdir()
            raise

    def _open(self, fingerprint: Mapping[str, Any], outputs: tuple[str, ...], overwrite: bool,
              overwrite_key: str) -> None:
        job, records = self.job, self.records
        ours = (JOB_FILE, *records, *outputs)
        meta_path = self.path / JOB_FILE
        if overwrite:
            for name in ours:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("job") != job:
                raise JobConfigMismatch(f"{self.path} holds a `{meta.get('job')}` job, not `{job}`: choose another "
                                        f"run.output_dir=... (or pass {overwrite_key}=true to start over)")
            if meta.get("fingerprint") != dict(fingerprint):
                raise JobConfigMismatch(
                    f"{self.path} was written with other settings ({describe_diff(meta['fingerprint'], fingerprint)}); "
                    f"re-run with the same settings to continue it, choose another run.output_dir=..., or pass "
                    f"{overwrite_key}=true to start over")
            for session in meta.get("sessions", []):
                if session.get("status") == "running":  # its process died without closing (SIGKILL, OOM, power)
                    session["status"] = "killed"
            self.meta = meta
        else:
            foreign = [p.name for p in self.path.iterdir()]
            if foreign and not overwrite:
                raise JobConfigMismatch(f"{self.path} is not empty and holds no {job} job ({', '.join(foreign[:4])}"
                                        f"{' ...' if len(foreign) > 4 else ''}): choose an empty run.output_dir=... "
                                        f"(or pass {overwrite_key}=true to write into it; other files stay)")
            self.meta = {"job": job, "fingerprint": dict(fingerprint), "sessions": []}
        self.resumed = self.has_records()
        self.session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0, "prompts": 0,
                        "status": "running"}
        self.meta["sessions"].append(self.session)
        self.save_meta()

    def save_meta(self) -> None:
        tmp = self.path / (JOB_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str))
        tmp.replace(self.path / JOB_FILE)

    def read(self, name: str) -> Iterator[dict[str, Any]]:
        """The records of `name`; a partial last line is dropped and cut from the file (`read_records`)."""
        return read_records(self.path / name, truncate=True)

    def append(self, name: str, record: Mapping[str, Any]) -> None:
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(self.path / name, "a", encoding="utf-8")
        f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        f.flush()

    def has_records(self) -> bool:
        return any((self.path / r).is_file() and (self.path / r).stat().st_size for r in self.records)

    def abandon(self) -> None:
        """The job failed before it could run (a bad model path, a bad input file): a fresh job dir that holds no
        record is left as if the job never started, so the corrected command is not refused as another config."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        if self.has_records() or len(self.meta["sessions"]) > 1:
            self.session["status"] = "failed"
            self.save_meta()
            self._unlock()
            return
        (self.path / JOB_FILE).unlink(missing_ok=True)
        self._unlock()
        if not any(self.path.iterdir()):
            self.path.rmdir()

    def close(self, status: str) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self.session["status"] = status
        self.save_meta()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # closing the last fd of the open file releases the flock
            self._lock = -1


def read_records(path: Path, *, truncate: bool = False) -> Iterator[dict[str, Any]]:
    """The JSON records of a JSONL file (none when it does not exist). A partial last line (the writer was killed
    while writing it) is dropped, and with `truncate` also cut from the file, so appends continue on a clean line."""
    if not path.is_file():
        return
    good_end = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            good_end += len(raw)
            yield record
    if truncate and good_end < path.stat().st_size:
        with open(path, "rb+") as f:
            f.truncate(good_end)
