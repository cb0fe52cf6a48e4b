"""Verifier registry: names -> ``fn(response_text, answer, **kwargs) -> float in [0, 1]``.

Four sources, looked up in this order by ``get_verifier(name)``:

1. ``BUILTIN_VERIFIERS`` below: built-in names -> ``"module:function"``, imported lazily on first use (so
   ``import omni_rl.verifiers`` stays cheap and e.g. sympy is only imported when ``mathruler`` is used).
2. Functions registered at runtime with the ``@register_verifier("name")`` decorator.
3. Third-party packages, through the entry-point group ``omni_rl.verifiers``::

       [project.entry-points."omni_rl.verifiers"]
       my_verifier = "my_pkg.rewards:my_verifier"

4. A dotted path ``"my_pkg.rewards:my_verifier"`` (module, colon, attribute path), without any packaging.

A name defined twice (decorator vs built-in, decorator vs decorator, entry point vs built-in/decorator, two entry points
with different targets) raises ``DuplicateVerifierError``. Re-registering the *same* function (same module and
qualified name, e.g. a module imported twice under spawn) is not a duplicate. Unknown names raise
``UnknownVerifierError`` whose message lists the known names.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "BUILTIN_VERIFIERS",
    "ENTRY_POINT_GROUP",
    "VerifierFn",
    "DuplicateVerifierError",
    "UnknownVerifierError",
    "get_verifier",
    "register_verifier",
    "list_verifiers",
    "verifier_exists",
    "verifier_spec",
]

VerifierFn = Callable[..., float]

ENTRY_POINT_GROUP = "omni_rl.verifiers"

# The registry file of built-in names. Values are "module:function" and are imported on first use.
BUILTIN_VERIFIERS: dict[str, str] = {
    "string-match": "omni_rl.verifiers.string_match:string_match",
    "mathruler": "omni_rl.verifiers.mathruler:mathruler",
    "multiple-choice": "omni_rl.verifiers.multiple_choice:multiple_choice",
    "gui-coordinate": "omni_rl.verifiers.gui_coordinate:gui_coordinate",
    "asr": "omni_rl.verifiers.asr:asr",
    "format": "omni_rl.verifiers.format_score:format_score",
}


class DuplicateVerifierError(ValueError):
    """A verifier name is defined by two different sources."""


class UnknownVerifierError(KeyError):
    """No verifier under that name. ``str()`` lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


_lock = threading.RLock()
_registered: dict[str, VerifierFn] = {}
_resolved: dict[str, VerifierFn] = {}
_entry_points_cache: dict[str, Any] | None = None


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


def register_verifier(name: str) -> Callable[[VerifierFn], VerifierFn]:
    """Decorator: register ``fn(response_text, answer, **kwargs) -> float`` under ``name``; returns ``fn`` unchanged."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"verifier name must be a non-empty string without ':', got {name!r}")

    def deco(fn: VerifierFn) -> VerifierFn:
        if not callable(fn):
            raise TypeError(f"register_verifier({name!r}) needs a callable, got {type(fn).__name__}")
        with _lock:
            if name in BUILTIN_VERIFIERS:
                raise DuplicateVerifierError(
                    f"verifier name {name!r} is built in ({BUILTIN_VERIFIERS[name]}); pick another name")
            old = _registered.get(name)
            if old is not None and old is not fn and _qualname(old) != _qualname(fn):
                raise DuplicateVerifierError(
                    f"verifier name {name!r} is already registered by {_qualname(old)}; "
                    f"cannot register {_qualname(fn)}")
            ep = _entry_points().get(name)
            if ep is not None and ep.value.replace(" ", "") != _qualname(fn):
                raise DuplicateVerifierError(
                    f"verifier name {name!r} is already provided by the entry point {ep.value!r}")
            _registered[name] = fn
            _resolved.pop(name, None)
        return fn

    return deco


def _entry_points() -> dict[str, Any]:
    """name -> EntryPoint for group ``omni_rl.verifiers`` (cached; ``refresh`` by clearing ``_entry_points_cache``)."""
    global _entry_points_cache
    if _entry_points_cache is None:
        from importlib.metadata import entry_points

        found: dict[str, Any] = {}
        conflicts: dict[str, set[str]] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            prev = found.get(ep.name)
            if prev is not None and prev.value != ep.value:
                conflicts.setdefault(ep.name, {prev.value}).add(ep.value)
            found[ep.name] = ep
        for name, values in conflicts.items():
            found[name] = _Conflict(name, sorted(values))
        _entry_points_cache = found
    return _entry_points_cache


class _Conflict:
    def __init__(self, name: str, values: list[str]):
        self.name, self.values, self.value = name, values, " | ".join(values)


def _import_target(spec: str) -> VerifierFn:
    """Import ``"pkg.module:attr.path"`` and return the attribute."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"bad verifier path {spec!r}; expected 'package.module:function'")
    obj: Any = importlib.import_module(module_name.strip())
    for part in attr_path.strip().split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"verifier {spec!r} is not callable ({type(obj).__name__})")
    return obj


def _resolve(name: str) -> VerifierFn:
    if name in BUILTIN_VERIFIERS:
        # a built-in name cannot also be an entry point: that would silently change what a dataset row means
        ep = _entry_points().get(name)
        if ep is not None:
            raise DuplicateVerifierError(
                f"verifier name {name!r} is built in ({BUILTIN_VERIFIERS[name]}) and also declared by the entry point "
                f"{ep.value!r}; rename the plugin")
        return _import_target(BUILTIN_VERIFIERS[name])
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    if isinstance(ep, _Conflict):
        raise DuplicateVerifierError(
            f"verifier name {name!r} is declared by several entry points: {', '.join(ep.values)}")
    if ep is not None:
        fn = ep.load()
        if not callable(fn):
            raise TypeError(f"entry point {name!r} = {ep.value!r} is not callable")
        # the plugin module may itself use @register_verifier(name) on the same function: fine
        if name in _registered and _qualname(_registered[name]) != _qualname(fn):
            raise DuplicateVerifierError(
                f"verifier name {name!r}: entry point {ep.value!r} and "
                f"@register_verifier {_qualname(_registered[name])}")
        return fn
    if ":" in name:
        return _import_target(name)
    raise UnknownVerifierError(
        f"unknown verifier {name!r}. Known verifiers: {', '.join(list_verifiers())}. "
        f"Use a registered name, an entry point of group {ENTRY_POINT_GROUP!r}, "
        f"or a dotted path 'pkg.module:function'.")


def get_verifier(name: str | VerifierFn) -> VerifierFn:
    """Return the verifier ``fn(response_text, answer, **kwargs) -> float`` for ``name`` (see module docstring).

    A callable is returned unchanged, so callers can accept either names or functions.
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"verifier must be a name or a callable, got {type(name).__name__}")
    fn = _resolved.get(name)
    if fn is not None:
        return fn
    with _lock:
        fn = _resolve(name.strip())
        _resolved[name] = fn
        return fn


def verifier_exists(name: Any) -> bool:
    """Whether ``name`` resolves to a verifier (for validating data rows up front). Built-in, registered and
    entry-point names are checked without importing anything; a dotted path is imported. Never raises."""
    if callable(name):
        return True
    if not isinstance(name, str) or not name.strip():
        return False
    name = name.strip()
    if name in BUILTIN_VERIFIERS or name in _registered:
        return True
    try:
        ep = _entry_points().get(name)
        if ep is not None:
            return not isinstance(ep, _Conflict)
        if ":" in name:
            get_verifier(name)
            return True
    except Exception:  # noqa: BLE001 -- import errors, missing attributes: the name does not resolve
        return False
    return False


def list_verifiers() -> list[str]:
    """All known names: built-ins, runtime-registered and entry points (dotted paths are open-ended, not listed)."""
    with _lock:
        return sorted(set(BUILTIN_VERIFIERS) | set(_registered) | set(_entry_points()))


def verifier_spec(name: str | VerifierFn) -> str:
    """A string that resolves to the same verifier in a fresh interpreter (used by the process pool).

    Built-in and entry-point names stay as they are; decorator-registered names and callables become
    ``"module:qualname"`` (the worker imports the module, which re-runs the decorator harmlessly).
    """
    if callable(name):
        spec = _qualname(name)
        if "<" in spec or spec.startswith("__main__:"):  # lambdas, closures, scripts/notebooks
            raise ValueError(f"verifier {spec} cannot be imported by a worker process; define it at module level in an "
                             "importable module")
        return spec
    if name in BUILTIN_VERIFIERS or ":" in name:
        return name
    with _lock:
        fn = _registered.get(name)
    if fn is not None:
        return verifier_spec(fn)
    return name


def _reset_for_tests() -> None:
    """Forget runtime registrations and the entry-point cache (tests only)."""
    global _entry_points_cache
    with _lock:
        _registered.clear()
        _resolved.clear()
        _entry_points_cache = None
