"""The verifier worker process of ``omni_rl.verifiers.pool``.

Started either as ``python -m omni_rl.verifiers._worker <fd>`` (start method ``subprocess``: a fresh interpreter that
imports only this package, see ``pool``'s docstring) or as the target of a ``multiprocessing`` spawn/forkserver
process. Protocol over one duplex ``multiprocessing.connection.Connection``:

    worker -> parent  ("ready", pid)                          after the built-in verifiers are imported
    parent -> worker  ("path", [sys.path entries])             so dotted-path verifiers resolve as in the parent
    parent -> worker  ("chunk", [(index, item), ...], w_fmt)   score these in order
    worker -> parent  ("r", index, outcome, format, reward, error)   one message per item, as soon as it is done
    parent -> worker  None                                     exit

Per-item messages let the parent know which item is running (the first unreported one of the chunk) and since when
(the arrival of the previous result), which is how it enforces per-item deadlines on chunks.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any


def _preload() -> None:
    """Import every built-in verifier (and math-verify, the normaliser tables) before reporting ready, so that import
    time never counts against an item's deadline."""
    from . import asr, mathruler
    from .registry import BUILTIN_VERIFIERS, get_verifier

    for name in BUILTIN_VERIFIERS:
        get_verifier(name)
    mathruler._math_verify()
    asr.normalize_transcript("warm up")


def serve(conn: Connection) -> None:
    """Worker main loop (see module docstring)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it closes the pool
    except ValueError:
        pass
    _preload()
    from .combine import score_one_safe

    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg: Any = conn.recv()
        except (EOFError, OSError):
            return  # parent went away
        if msg is None:
            return
        kind = msg[0]
        if kind == "path":
            for p in reversed(msg[1]):
                if p not in sys.path:
                    sys.path.insert(0, p)
        elif kind == "chunk":
            _, chunk, w_fmt = msg
            for index, item in chunk:
                r = score_one_safe(item, format_weight=w_fmt)
                conn.send(("r", index, r.outcome, r.format, r.reward, r.error))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    serve(Connection(int(argv[0])))


if __name__ == "__main__":
    main()
