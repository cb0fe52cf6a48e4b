"""A test hook of the loops: die the way a killed job dies (`run.stop_after_steps`, `run.stop_after_stage`)."""

from __future__ import annotations

import os
import signal
from typing import Any


def simulate_crash(console: Any, why: str = "run.stop_after_steps reached") -> None:
    """Die the way a killed job dies: SIGKILL (no finally blocks, no final checkpoint). When this process leads
    its process group (tests start it with start_new_session=True) the whole group dies, Ray's local head processes
    included, exactly as `kill -9 -PGID` of a job would."""
    console.print(f"{why}: killing this process (simulated crash)")
    console.file.flush()
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
