"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when it runs the SIGINT handler. When that
is inside an object finalizer (`__del__`, a weakref callback, garbage collection of a Ray or subprocess handle),
Python prints "Exception ignored in ..." and carries on: the press is lost and a long job runs to the end. Loops
that must stop on Ctrl-C therefore run under `sigint_flag()`, whose handler also records the press, and call
`check()` at each safe point (after a record is written, after a step is logged).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SigintFlag:
    """Whether Ctrl-C was pressed while the flag was installed."""

    def __init__(self) -> None:
        self._pressed = threading.Event()

    @property
    def pressed(self) -> bool:
        return self._pressed.is_set()

    def press(self) -> None:
        self._pressed.set()

    def check(self) -> None:
        """Raise KeyboardInterrupt when Ctrl-C was pressed (even if its first KeyboardInterrupt was swallowed)."""
        if self.pressed:
            raise KeyboardInterrupt


@contextmanager
def sigint_flag() -> Iterator[SigintFlag]:
    """Install a SIGINT handler that records the press and raises KeyboardInterrupt at once; the previous handler
    is restored on exit. Off the main thread (where Python cannot install handlers) the flag is never set."""
    flag = SigintFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        flag.press()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
