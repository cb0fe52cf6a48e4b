"""The verifier worker process of ``omni_rl.verifiers.pool``.

Started either as ``python -m omni_rl.verifiers._worker <fd>`` (start method ``subprocess``: a fresh interpreter that
imports only this package, see ``pool``'s docstring) or as the target of a ``multiprocessing`` spawn/forkserver
process. Protocol over one duplex ``multiprocessing.connection.Connection``:

    parent -> worker  ("setup", setup)                         at start, and again when the parent's setup changes
    worker -> parent  ("ready", pid, [problems])               after the built-ins are imported and setup applied
    parent -> worker  ("chunk", [(index, item), ...], w_fmt)   score these in order
    worker -> parent  ("r", index, outcome, format, reward, error)   one message per item, as soon as it is done
    parent -> worker  None                                     exit

The worker imports only what the parent process's code chose, carried by ``setup`` (``VerifierPool``): ``path`` (the
parent's ``sys.path``), ``plugins`` (modules ``load_plugins`` imported there), ``registered`` (name ->
``"module:qualname"`` of the parent's other decorator-registered functions) and ``callables`` (alias -> the
``"module:qualname"`` of a function the parent's code passed as a verifier). Items carry plain names in ``verifier``,
looked up with ``get_verifier`` (built-in, registered or entry point: a name is never imported by its spelling), or
``verifier_alias`` for a callable. A setup entry that fails to import is reported in ``ready``'s problems; the names it
would have provided then score 0 as unknown.

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


def apply_setup(setup: dict[str, Any], aliases: dict[int, Any]) -> list[str]:
    """Import what the parent chose (module docstring); fills ``aliases``; returns the problems, one line each."""
    from .registry import _import_target, _registered, load_plugins, register_verifier

    for p in reversed(setup["path"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    problems = []
    for module in setup["plugins"]:
        try:
            load_plugins([module])
        except Exception as e:  # noqa: BLE001 -- reported to the parent, which logs it
            problems.append(str(e))
    for name, path in setup["registered"].items():
        if name in _registered:  # a plugin module registered it already
            continue
        try:
            register_verifier(name)(_import_target(path))
        except Exception as e:  # noqa: BLE001
            problems.append(f"verifier {name!r} ({path}): {type(e).__name__}: {e}")
    for alias, path in setup["callables"].items():
        if alias not in aliases:
            try:
                aliases[alias] = _import_target(path)
            except Exception as e:  # noqa: BLE001
                problems.append(f"verifier {path}: {type(e).__name__}: {e}")
    return problems


def _item(item: dict[str, Any], aliases: dict[int, Any]) -> dict[str, Any]:
    """The item with a callable alias replaced by its function (the parent's choice, from setup)."""
    if "verifier_alias" not in item:
        return item
    item = dict(item)
    alias = item.pop("verifier_alias")
    if alias not in aliases:
        raise KeyError(f"verifier callable #{alias} did not import in the worker (see the pool's warning)")
    item["verifier"] = aliases[alias]
    return item


def serve(conn: Connection) -> None:
    """Worker main loop (see module docstring)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it closes the pool
    except ValueError:
        pass
    _preload()
    from .combine import RewardResult, _error_text, score_one_safe

    aliases: dict[int, Any] = {}
    while True:
        try:
            msg: Any = conn.recv()
        except (EOFError, OSError):
            return  # parent went away
        if msg is None:
            return
        kind = msg[0]
        if kind == "setup":
            conn.send(("ready", os.getpid(), apply_setup(msg[1], aliases)))
        elif kind == "chunk":
            _, chunk, w_fmt = msg
            for index, item in chunk:
                try:
                    r = score_one_safe(_item(item, aliases), format_weight=w_fmt)
                except KeyError as e:
                    r = RewardResult(0.0, 0.0, 0.0, _error_text(e))
                conn.send(("r", index, r.outcome, r.format, r.reward, r.error))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    serve(Connection(int(argv[0])))


if __name__ == "__main__":
    main()
