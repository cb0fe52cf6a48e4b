"""Verifier registry: names -> ``fn(response_text, answer, **kwargs) -> float in [0, 1]``.

A data row names a verifier; it never names code. ``get_verifier(name)`` looks a name up in three sources, in this
order, and nothing else:

1. ``BUILTIN_VERIFIERS`` below: built-in names -> the function that implements each, imported lazily on first use (so
   ``import omni_rl.verifiers`` stays cheap and e.g. sympy is only imported when ``mathruler`` is used).
2. Functions registered with the ``@register_verifier("name")`` decorator. The decorator runs when its module is
   imported, so a name exists only once trusted code imported that module: the configuration lists it
   (``verify.plugins``, ``omni-rl verify --plugin``; ``load_plugins`` imports it) or the caller's own code did.
3. Installed packages, through the entry-point group ``omni_rl.verifiers``::

       [project.entry-points."omni_rl.verifiers"]
       my_verifier = "my_pkg.rewards:my_verifier"

A name never resolves to a module or attribute by its spelling (``"os:system"`` is an unknown name), and
``verifier_exists`` checks a name without importing anything, so a row can be validated before anything runs.
Callables passed in code are trusted and returned unchanged.

A name defined twice (decorator vs built-in, decorator vs decorator, entry point vs built-in/decorator, two entry points
with different targets) raises ``DuplicateVerifierError``. Re-registering the *same* function (same module and
qualified name, e.g. a module imported twice under spawn) is not a duplicate. Unknown names raise
``UnknownVerifierError`` whose message lists the known names.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "BUILTIN_VERIFIERS",
    "ENTRY_POINT_GROUP",
    "VerifierFn",
    "DuplicateVerifierError",
    "UnknownVerifierError",
    "PluginError",
    "get_verifier",
    "register_verifier",
    "list_verifiers",
    "load_plugins",
    "verifier_exists",
    "import_path",
    "worker_setup",
]

VerifierFn = Callable[..., float]

ENTRY_POINT_GROUP = "omni_rl.verifiers"

# The registry file of built-in names -> the function implementing each ("module:function", imported on first use).
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


class PluginError(ValueError):
    """A plugin module named by the configuration cannot be imported, or registers no verifier."""


_lock = threading.RLock()
_registered: dict[str, VerifierFn] = {}
_resolved: dict[str, VerifierFn] = {}
_entry_points_cache: dict[str, Any] | None = None
_plugins: dict[str, list[str]] = {}  # plugin module imported by load_plugins -> the names it registered
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


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
    """Import ``"pkg.module:attr.path"`` and return the attribute. Only for strings this package's code holds (the
    built-in table, ``worker_setup`` of the parent process), never for a name from data."""
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
    raise UnknownVerifierError(
        f"unknown verifier {name!r}. Known verifiers: {', '.join(list_verifiers())}. A data row names a verifier, "
        f"never code: register your own with @register_verifier in a module listed in verify.plugins (omni-rl "
        f"verify --plugin MODULE), or install a package declaring an entry point of group {ENTRY_POINT_GROUP!r}.")


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
    """Whether ``name`` is a built-in, registered or entry-point name (for validating data rows up front). Imports
    nothing (entry points are read from installed metadata, not loaded). Never raises."""
    if callable(name):
        return True
    if not isinstance(name, str) or not name.strip():
        return False
    name = name.strip()
    if name in BUILTIN_VERIFIERS or name in _registered:
        return True
    try:
        ep = _entry_points().get(name)
    except Exception:  # noqa: BLE001 -- unreadable package metadata: the name is not known
        return False
    return ep is not None and not isinstance(ep, _Conflict)


def list_verifiers() -> list[str]:
    """All known names: built-ins, runtime-registered and entry points."""
    with _lock:
        return sorted(set(BUILTIN_VERIFIERS) | set(_registered) | set(_entry_points()))


def load_plugins(modules: Iterable[str]) -> dict[str, list[str]]:
    """Import the verifier plugin modules the configuration lists (``verify.plugins``, ``omni-rl verify --plugin``),
    each once; their ``@register_verifier`` decorators register their names. Returns module -> names it registered.

    Raises ``PluginError`` (with what to do) for a name that is not a module name, a module that fails to import, or a
    module that registers no verifier. Importing runs the module's code: only the configuration names plugins, never a
    data row.
    """
    if isinstance(modules, str):
        modules = [modules]
    out: dict[str, list[str]] = {}
    for module in modules:
        if not isinstance(module, str) or not _MODULE_NAME.match(module.strip()):
            raise PluginError(f"verifier plugin {module!r} is not a module name; list modules like my_pkg.rewards "
                              "(verify.plugins=[my_pkg.rewards], omni-rl verify --plugin my_pkg.rewards)")
        module = module.strip()
        with _lock:
            if module in _plugins:
                out[module] = list(_plugins[module])
                continue
            before = set(_registered)
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 -- any failure of the plugin's own code is reported the same way
            raise PluginError(f"verifier plugin {module!r} failed to import: {type(e).__name__}: {e}. Install the "
                              "package that provides it, or put its folder on PYTHONPATH") from e
        with _lock:
            names = sorted(n for n, fn in _registered.items()
                           if n not in before or _module_of(fn) == module or _module_of(fn).startswith(module + "."))
            if not names:
                raise PluginError(f"verifier plugin {module!r} registered no verifier; decorate its verifier "
                                  "functions with @register_verifier(\"name\") from omni_rl.verifiers")
            _plugins[module] = names
        out[module] = names
    return out


def _module_of(fn: Any) -> str:
    return str(getattr(fn, "__module__", "") or "")


def import_path(fn: VerifierFn) -> str:
    """``"module:qualname"`` of a function that a fresh interpreter can import (its module, then the attribute).

    Raises ``ValueError`` for lambdas, closures and functions of ``__main__`` (a script or notebook): a verifier worker
    process cannot reach them; define the verifier at module level of an importable module.
    """
    spec = _qualname(fn)
    if "<" in spec or spec.startswith("__main__:") or spec.startswith("?:"):
        raise ValueError(f"verifier {spec} cannot be imported by a worker process; define it at module level in an "
                         "importable module")
    return spec


def worker_setup() -> dict[str, Any]:
    """What a verifier worker process (a fresh interpreter) imports to know the names this process knows, built from
    this process's own registry and never from item data:

    * ``plugins``: the plugin modules ``load_plugins`` imported, in order (importing them re-runs their decorators);
    * ``registered``: name -> ``import_path`` of every other ``@register_verifier`` function (registered by the
      caller's code);
    * ``unreachable``: name -> why, for registered functions no worker can import (lambdas, closures, ``__main__``).

    Built-in and entry-point names need nothing: the worker resolves them itself.
    """
    with _lock:
        from_plugins = {n for names in _plugins.values() for n in names}
        registered, unreachable = {}, {}
        for name, fn in sorted(_registered.items()):
            if name in from_plugins:
                continue
            try:
                registered[name] = import_path(fn)
            except ValueError as e:
                unreachable[name] = str(e)
        return {"plugins": list(_plugins), "registered": registered, "unreachable": unreachable}


def _reset_for_tests() -> None:
    """Forget runtime registrations, loaded plugins and the entry-point cache (tests only)."""
    global _entry_points_cache
    with _lock:
        _registered.clear()
        _resolved.clear()
        _plugins.clear()
        _entry_points_cache = None
