"""A run's start-up: where its seconds go (`StartupClock`) and set-up that runs beside it (`Background`)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psutil

from omni_rl.wiring.run import Run


class StartupClock:
    """Where a run's start-up seconds go: `lap(name)` after each phase; `report(run)` prints one line and writes
    `startup.json` in the run dir. The first entry, `process`, is from the process's start to the clock's creation
    (Python and the library imports, config composition). "phase/part" entries are parts of a phase that run side
    by side, each measured from the phase's start (not added to the total)."""

    def __init__(self) -> None:
        self._now = time.perf_counter
        self._last = self._now()
        self.parts: dict[str, float] = {"process": max(0.0, time.time() - psutil.Process().create_time())}

    def lap(self, name: str) -> None:
        now = self._now()
        self.parts[name] = now - self._last
        self._last = now

    def lap_of(self, name: str) -> None:
        """An overlapping sub-phase ("phase/part"): its seconds since the last `lap`, excluded from the total."""
        self.parts[name] = self._now() - self._last

    def report(self, run: Run) -> dict[str, float]:
        (run.dir / "startup.json").write_text(json.dumps(self.parts, indent=2))
        total = sum(v for k, v in self.parts.items() if "/" not in k)  # "a/b" entries overlap their phase
        run.console.print(f"start-up {total:.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in self.parts.items()))
        return self.parts


class Background:
    """`fn()` in a daemon thread; `result()` waits and returns it (or re-raises its exception). Daemon: a Ctrl-C in
    the main thread exits without waiting for it (what it builds is written to temp dirs renamed into place)."""

    def __init__(self, fn: Any, name: str):
        self._out: list[Any] = []
        self._err: list[BaseException] = []

        def run() -> None:
            try:
                self._out.append(fn())
            except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
                self._err.append(e)

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> Any:
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)  # short waits: a Ctrl-C reaches the main thread at once
        if self._err:
            raise self._err[0]
        return self._out[0]
