"""Batch scoring in a pool of worker processes with per-item deadlines.

``VerifierPool`` keeps ``num_workers`` processes alive across calls (the RL loop scores every step), each of which
imports only ``omni_rl.verifiers``. ``score(items)`` returns ``(list[RewardResult], stats)`` in input order.

Items: ``{"verifier": name | callable, "answer": ..., "response": str, "verifier_kwargs": {...}?,
"unanswerable": bool?}`` (``unanswerable``: the row's flag, ``combine``'s abstention rule; the pool's
``abstention_markers``, None for the built-in ones, go with every item to the workers). A name is a
built-in, registered or entry-point name (``omni_rl.verifiers.registry``); an unknown one (``"os:system"`` included)
scores 0 with ``UnknownVerifierError`` before any worker sees it, and nothing is imported because of it.

Semantics
---------
* **Chunks, per-item deadlines.** Items go to workers in chunks (``chunk_size``, default 32, smaller for small
  batches) to amortise IPC. The worker reports each item as soon as it is scored, so the parent always knows which item
  of a chunk is running and since when. An item running longer than ``timeout_s`` gets its worker killed (SIGKILL) and
  replaced; it scores 0 with ``error="timeout"``; the chunk's remaining items are re-queued at the front; the batch
  continues. Nothing relies on ``signal.alarm`` in the caller's process or threads.
* **Errors are counted, not hidden.** A verifier exception, a non-finite score, an unknown verifier or a malformed item
  scores 0 with the error text in ``RewardResult.error``; a worker that dies (segfault, OOM kill) scores its current
  item 0 with ``error="worker died ..."``. ``stats = {"n", "errors", "timeouts", "by_verifier": {name: {"n",
  "errors", "timeouts", "mean_reward"}}, "seconds"}`` (timeouts are not counted in ``errors``); each batch with
  failures logs one warning with the counts and the first few messages.
* **No fork.** The caller may run Ray/vLLM threads, so workers are fresh interpreters. ``start_method="subprocess"``
  (default) runs ``python -m omni_rl.verifiers._worker`` with a socketpair wrapped in
  ``multiprocessing.connection.Connection``: exactly ``spawn`` semantics, except that ``multiprocessing``'s spawn (and
  forkserver) would re-import the caller's ``__main__`` script in every worker -- under the ``omni-rl`` console script
  that is the whole CLI -- while this imports only the verifiers. ``"spawn"`` and ``"forkserver"`` (multiprocessing
  contexts) are available too. Workers ignore SIGINT, live in their own session (subprocess mode) and exit when the
  parent's end of the connection closes.
* **Workers import only what this process's code chose.** Each worker gets a setup when it starts, and again when it
  changes: the parent's ``sys.path``, the plugin modules ``load_plugins`` imported (``plugins=`` here, or
  ``verify.plugins``), ``"module:qualname"`` of the other ``@register_verifier`` functions, and of the callables passed
  as item verifiers in code, each under an alias the pool made (``registry.worker_setup``, ``_worker``). Items carry
  plain names or those aliases, never an import path. A registered function or callable must live in an importable
  module (not ``__main__``/a notebook cell), else its items score 0 with the reason.
* ``num_workers=0`` scores in the calling process (``score_one_safe``, no hard deadline) -- for debugging.
"""

from __future__ import annotations

import logging
import math
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .abstention import check_markers
from .combine import DEFAULT_FORMAT_WEIGHT, RewardResult, _error_text, score_one_safe

DEFAULT_WORKERS = 2  # verifier worker processes (the schema's verify.num_workers reads this)
DEFAULT_TIMEOUT_S = 3.0  # per-item deadline (verify.timeout_s)
from .registry import get_verifier, import_path, load_plugins, verifier_exists, worker_setup

__all__ = ["VerifierPool", "score_batch", "score_one_safe", "TIMEOUT_ERROR"]

log = logging.getLogger(__name__)

TIMEOUT_ERROR = "timeout"
_START_TIMEOUT_S = 120.0  # a worker that is not ready by then is treated as failed to start
_MAX_START_FAILURES = 3


class _Proc:
    """A worker process behind one interface for subprocess.Popen and multiprocessing.Process."""

    def __init__(self, handle: Any):
        self.handle = handle

    @property
    def pid(self) -> int | None:
        return self.handle.pid

    def alive(self) -> bool:
        if isinstance(self.handle, subprocess.Popen):
            return self.handle.poll() is None
        return self.handle.is_alive()

    def exitcode(self) -> int | None:
        if isinstance(self.handle, subprocess.Popen):
            return self.handle.poll()
        return self.handle.exitcode

    def kill(self) -> None:
        try:
            self.handle.kill()
        except (ProcessLookupError, OSError, AttributeError):
            pass
        self.join(5.0)

    def join(self, timeout: float) -> None:
        try:
            if isinstance(self.handle, subprocess.Popen):
                self.handle.wait(timeout)
            else:
                self.handle.join(timeout)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class _Worker:
    proc: _Proc
    conn: Connection
    started: float
    ready: bool = False
    pending: deque = field(default_factory=deque)  # indices sent, not yet reported; pending[0] is running
    item_started: float = 0.0
    setup: Any = None  # the setup last sent (module docstring)


def _worker_target(conn: Connection) -> None:  # multiprocessing entry point (module-level: picklable)
    from ._worker import serve

    serve(conn)


class VerifierPool:
    """A reusable pool of verifier worker processes (module docstring). Use as a context manager or call
    ``close()``."""

    def __init__(self, num_workers: int = DEFAULT_WORKERS, *, timeout_s: float = DEFAULT_TIMEOUT_S, format_weight: float = DEFAULT_FORMAT_WEIGHT,
                 chunk_size: int = 32, start_method: str = "subprocess", plugins: Sequence[str] = (),
                 abstention_markers: Sequence[str] | None = None):
        if num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if start_method not in ("subprocess", "spawn", "forkserver"):
            raise ValueError("start_method must be 'subprocess', 'spawn' or 'forkserver' (never fork)")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.format_weight = float(format_weight)
        self.chunk_size = max(1, int(chunk_size))
        self.start_method = start_method
        self.abstention_markers = check_markers(abstention_markers)
        self._workers: list[_Worker] = []
        self._closed = False
        self._start_failures = 0
        self._lock = threading.Lock()  # one score() at a time; concurrent callers queue up
        self.restarts = 0  # workers replaced after a timeout or a crash, over the pool's life
        load_plugins(plugins)  # PluginError before any worker starts
        self._aliases: dict[str, int] = {}  # "module:qualname" of a callable passed in code -> its alias
        self._setup = self._current_setup()
        self._problems_seen: set[str] = set()
        for _ in range(num_workers):
            self._workers.append(self._start_worker())

    # --- worker lifecycle -----------------------------------------------------------------------------------------
    def _start_worker(self) -> _Worker:
        if self.start_method == "subprocess":
            parent_sock, child_sock = socket.socketpair()
            try:
                handle = subprocess.Popen(
                    [sys.executable, "-m", "omni_rl.verifiers._worker", str(child_sock.fileno())],
                    pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True,
                )
            finally:
                child_sock.close()
            conn = Connection(parent_sock.detach())
        else:
            import multiprocessing as mp

            ctx = mp.get_context(self.start_method)
            conn, child_conn = ctx.Pipe(duplex=True)
            handle = ctx.Process(target=_worker_target, args=(child_conn,), daemon=True, name="omni-rl-verifier")
            handle.start()
            child_conn.close()
        w = _Worker(_Proc(handle), conn, started=time.monotonic())
        self._send_setup(w)
        return w

    def _current_setup(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        setup = dict(base) if base is not None else worker_setup()
        setup["path"] = list(sys.path)
        setup["callables"] = {alias: path for path, alias in self._aliases.items()}
        return setup

    def _send_setup(self, w: _Worker) -> None:
        """(Re)send the setup; the worker is not ready until it has applied it."""
        w.setup, w.ready, w.started = self._setup, False, time.monotonic()
        try:
            w.conn.send(("setup", self._setup))
        except OSError:
            pass  # died at once; noticed by the main loop

    def _verifier_field(self, verifier: Any, unreachable: dict[str, str]) -> dict[str, Any]:
        """The item's verifier as the workers get it: a known name, or the alias of a callable passed in code."""
        if callable(verifier):
            return {"verifier_alias": self._aliases.setdefault(import_path(verifier), len(self._aliases))}
        if not isinstance(verifier, str):
            raise TypeError(f"verifier must be a name or a callable, got {type(verifier).__name__}")
        if not verifier_exists(verifier):
            get_verifier(verifier)  # raises UnknownVerifierError listing the known names; imports nothing
        if verifier.strip() in unreachable:
            raise ValueError(unreachable[verifier.strip()])
        return {"verifier": verifier}

    def _replace(self, w: _Worker) -> None:
        w.proc.kill()
        try:
            w.conn.close()
        except OSError:
            pass
        self.restarts += 1
        self._workers[self._workers.index(w)] = self._start_worker()

    def close(self) -> None:
        """Stop the workers (politely, then SIGKILL after 2 s)."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.alive():
                w.proc.kill()
            try:
                w.conn.close()
            except OSError:
                pass
        self._workers = []

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass

    # --- scoring --------------------------------------------------------------------------------------------------
    def score(self, items: Sequence[dict[str, Any]]) -> tuple[list[RewardResult], dict[str, Any]]:
        """Score ``items`` (module docstring); returns results in input order and stats. Thread-safe (serialised)."""
        with self._lock:
            return self._score(items)

    def _score(self, items: Sequence[dict[str, Any]]) -> tuple[list[RewardResult], dict[str, Any]]:
        if self._closed:
            raise RuntimeError("VerifierPool is closed")
        t0 = time.monotonic()
        items = list(items)
        results: list[RewardResult | None] = [None] * len(items)
        if self.num_workers == 0:
            results = [score_one_safe({**it, "abstention_markers": self.abstention_markers},
                                      format_weight=self.format_weight) if isinstance(it, dict)
                       else RewardResult(0.0, 0.0, 0.0, "TypeError: item must be a dict") for it in items]
            return results, _stats(items, results, time.monotonic() - t0)

        payloads: dict[int, dict[str, Any]] = {}
        registry_setup = worker_setup()  # read once per batch: its "unreachable" names and the setup sent below
        unreachable = registry_setup["unreachable"]
        for i, it in enumerate(items):
            try:
                payloads[i] = {
                    **self._verifier_field(it["verifier"], unreachable),
                    "answer": it.get("answer"),
                    "response": it["response"],
                    "verifier_kwargs": it.get("verifier_kwargs"),
                    "unanswerable": it.get("unanswerable", False),
                    "abstention_markers": self.abstention_markers,  # one object: pickled once per chunk
                }
            except Exception as e:  # noqa: BLE001 -- malformed item
                results[i] = RewardResult(0.0, 0.0, 0.0, _error_text(e))
        setup = self._current_setup(registry_setup)  # after the loop: it may have given new callables aliases
        if setup != self._setup:  # a plugin loaded, a name registered or a new callable since the workers started
            self._setup = setup
            for w in self._workers:
                self._send_setup(w)
        todo = sorted(payloads)
        size = max(1, min(self.chunk_size, math.ceil(len(todo) / max(1, 4 * self.num_workers))))
        queue: deque[list[int]] = deque(todo[k:k + size] for k in range(0, len(todo), size))
        remaining = len(todo)

        while remaining:
            now = time.monotonic()
            for w in list(self._workers):
                if w.ready and not w.pending and queue:
                    chunk = queue.popleft()
                    try:
                        w.conn.send(("chunk", [(i, payloads[i]) for i in chunk], self.format_weight))
                    except OSError:
                        queue.appendleft(chunk)
                        self._on_death(w, results, queue)
                        continue
                    w.pending = deque(chunk)
                    w.item_started = now
            waits = [w.item_started + self.timeout_s - now for w in self._workers if w.pending]
            if any(not w.ready for w in self._workers):
                waits.append(0.2)
            ready = wait([w.conn for w in self._workers], timeout=max(0.0, min(waits)) if waits else None)
            by_conn = {id(w.conn): w for w in self._workers}
            for conn in ready:
                w = by_conn.get(id(conn))
                if w is not None:
                    remaining -= self._drain(w, results, queue)
            now = time.monotonic()
            for w in list(self._workers):
                if w.pending and now - w.item_started > self.timeout_s:
                    i = w.pending.popleft()
                    results[i] = RewardResult(0.0, 0.0, 0.0, TIMEOUT_ERROR)
                    remaining -= 1
                    log.warning("verifier item %d (%s) exceeded %.1fs: worker %s killed and replaced",
                                i, _label(items[i]["verifier"]), self.timeout_s, w.proc.pid)
                    if w.pending:
                        queue.appendleft(list(w.pending))
                    w.pending.clear()
                    self._replace(w)
                elif not w.ready and now - w.started > _START_TIMEOUT_S:
                    self._start_failed(w, "not ready after %.0fs" % _START_TIMEOUT_S)

        out = [r if r is not None else RewardResult(0.0, 0.0, 0.0, "internal: not scored") for r in results]
        stats = _stats(items, out, time.monotonic() - t0)
        _log_failures(items, out, stats)
        return out, stats

    def _drain(self, w: _Worker, results: list, queue: deque) -> int:
        """Read every message waiting on ``w``; returns the number of items completed (including a crashed one)."""
        done = 0
        while True:
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                return done + self._on_death(w, results, queue)
            if msg[0] == "r":
                _, i, outcome, fmt, rew, err = msg
                results[i] = RewardResult(outcome, fmt, rew, err)
                if w.pending and w.pending[0] == i:
                    w.pending.popleft()
                else:  # cannot happen with the in-order protocol; keep the books right anyway
                    try:
                        w.pending.remove(i)
                    except ValueError:
                        continue
                w.item_started = time.monotonic()
                done += 1
            elif msg[0] == "ready":
                w.ready = True
                self._start_failures = 0
                for problem in set(msg[2]) - self._problems_seen:
                    log.warning("verifier worker setup: %s", problem)
                self._problems_seen.update(msg[2])
            try:
                if not w.conn.poll():
                    return done
            except (EOFError, OSError):
                return done + self._on_death(w, results, queue)

    def _on_death(self, w: _Worker, results: list, queue: deque) -> int:
        """Worker exited unexpectedly: its running item scores 0, the rest of its chunk is re-queued."""
        w.proc.join(1.0)
        code = w.proc.exitcode()
        if not w.ready:
            self._start_failed(w, f"exit code {code}")
            return 0
        done = 0
        if w.pending:
            i = w.pending.popleft()
            results[i] = RewardResult(0.0, 0.0, 0.0, f"worker died (exit code {code})")
            log.warning("verifier worker %s died (exit code %s) while scoring item %d", w.proc.pid, code, i)
            done = 1
            if w.pending:
                queue.appendleft(list(w.pending))
            w.pending.clear()
        self._replace(w)
        return done

    def _start_failed(self, w: _Worker, why: str) -> None:
        self._start_failures += 1
        if self._start_failures > _MAX_START_FAILURES:
            self.close()
            raise RuntimeError(f"verifier workers fail to start ({why}); see their stderr above")
        log.warning("verifier worker %s failed to start (%s); retrying", w.proc.pid, why)
        self._replace(w)


def _label(verifier: Any) -> str:
    """A verifier's name in stats and logs (a callable's qualified name)."""
    return verifier if isinstance(verifier, str) else getattr(verifier, "__qualname__", str(verifier))


def _stats(items: Sequence[Any], results: Sequence[RewardResult], seconds: float) -> dict[str, Any]:
    by: dict[str, dict[str, Any]] = {}
    errors = timeouts = 0
    for it, r in zip(items, results):
        name = _label(it.get("verifier") if isinstance(it, dict) else None)
        b = by.setdefault(name, {"n": 0, "errors": 0, "timeouts": 0, "mean_reward": 0.0})
        b["n"] += 1
        b["mean_reward"] += r.reward
        if r.error == TIMEOUT_ERROR:
            timeouts += 1
            b["timeouts"] += 1
        elif r.error is not None:
            errors += 1
            b["errors"] += 1
    for b in by.values():
        b["mean_reward"] = b["mean_reward"] / b["n"] if b["n"] else 0.0
    return {"n": len(results), "errors": errors, "timeouts": timeouts, "by_verifier": by, "seconds": seconds}


def _log_failures(items: Sequence[Any], results: Sequence[RewardResult], stats: dict[str, Any]) -> None:
    if not stats["errors"] and not stats["timeouts"]:
        return
    first = [f"item {i}: {r.error}" for i, r in enumerate(results) if r.error and r.error != TIMEOUT_ERROR][:3]
    per = {k: (v["errors"], v["timeouts"]) for k, v in stats["by_verifier"].items() if v["errors"] or v["timeouts"]}
    log.warning("verifiers: %d errors, %d timeouts in %d items (errors, timeouts per verifier: %s)%s",
                stats["errors"], stats["timeouts"], stats["n"], per, ("; first: " + " | ".join(first)) if first else "")


def score_batch(items: Iterable[dict[str, Any]], *, num_workers: int = DEFAULT_WORKERS,
                timeout_s: float = DEFAULT_TIMEOUT_S,
                format_weight: float = DEFAULT_FORMAT_WEIGHT, pool: VerifierPool | None = None,
                **pool_kwargs: Any) -> tuple[list[RewardResult], dict[str, Any]]:
    """Score ``items`` in a process pool with per-item deadlines (module docstring).

    Starts and closes a ``VerifierPool`` per call (~1-2 s of worker start-up) unless ``pool`` is given; loops that
    score every step should keep a ``VerifierPool`` open instead.
    """
    items = list(items)
    if pool is not None:
        return pool.score(items)
    with VerifierPool(num_workers, timeout_s=timeout_s, format_weight=format_weight, **pool_kwargs) as p:
        return p.score(items)
