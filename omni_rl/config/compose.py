"""Compose `configs/` (shipped as the package `omni_rl.configs`) with command-line `key=value` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Sequence
from typing import Any

from omni_rl.config.schema import OmniRLConfig, register_configs, to_object


class ConfigError(ValueError):
    """A config could not be composed; the message says which key/value and what is allowed."""


def compose_config(overrides: Sequence[str] = (), *, config_name: str = "config") -> OmniRLConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="omni_rl.configs", version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        added = unknown_keys(cfg)  # `+section.key=value` adds a key the schema lacks without an error of Hydra's
        obj = None if added else to_object(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else e
        known = explain(cause, overrides) if isinstance(cause, OmegaConfBaseException) else None
        raise ConfigError(
            known or f"{e}\n  (overrides: {' '.join(overrides) or '<none>'}; "
            "see `omni-rl show-config` for every key and its default)"
        ) from e
    if obj is None:
        raise ConfigError(no_such_key(*added[0]))
    return obj


def unknown_keys(node: Any, prefix: str = "") -> list[tuple[str, type]]:
    """(full key, its section's dataclass) of each key under `node` that its section's schema does not declare."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    found: list[tuple[str, type]] = []
    if isinstance(node, (DictConfig, ListConfig)) and (node._is_none() or node._is_missing()):
        return found
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            found += unknown_keys(item, f"{prefix}[{i}]")
    elif isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        names = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
        for key in node:
            full = f"{prefix}.{key}" if prefix else str(key)
            if names is not None and key not in names:
                found.append((full, schema))
            else:
                found += unknown_keys(node._get_node(key), full)
    return found


def no_such_key(full_key: str, schema: type) -> str:
    """`section.key: no such key` with the nearest declared key and every key of the section."""
    section, _, key = full_key.rpartition(".")
    names = [f.name for f in dataclasses.fields(schema)]
    near = difflib.get_close_matches(key, names, n=1)
    where = f"{section}." if section else ""
    return (f"{full_key}: no such key" + (f"; did you mean {where}{near[0]}?" if near else "")
            + f" ({section or schema.__name__} has: {', '.join(names)})")


def explain(err: Any, overrides: Sequence[str]) -> str | None:
    """The message of an OmegaConf error on a schema field: a key the schema lacks, or a value of the wrong type;
    None for any other error."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if isinstance(err, (ConfigAttributeError, ConfigKeyError)) and dataclasses.is_dataclass(err.ref_type) \
            and err.full_key:
        return no_such_key(err.full_key, err.ref_type)
    return wrong_type(err, overrides)


def wrong_type(err: Any, overrides: Sequence[str]) -> str | None:
    """`key: expected <type>, got <value>` and what to pass, for an OmegaConf ValidationError on a schema field
    (a value of the wrong type); None for any other error."""
    from omegaconf import MISSING
    from omegaconf.errors import ValidationError

    ref, key = err.ref_type, err.key
    if not (isinstance(err, ValidationError) and err.full_key and dataclasses.is_dataclass(ref)
            and isinstance(key, str)):
        return None
    field = {f.name: f for f in dataclasses.fields(ref)}.get(key)
    if field is None:
        return None
    tp = typing.get_type_hints(ref)[key]
    expected = type_name(tp)
    given = [o.split("=", 1)[1] for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+~") == err.full_key]
    got = repr(given[-1]) if given else repr(err.value)
    if dataclasses.is_dataclass(tp):
        how = f"set its keys one by one ({err.full_key}.<key>=value)"
    elif field.default is dataclasses.MISSING or field.default == MISSING:
        how = f"pass {expected}"
    else:
        default = "null" if field.default is None else str(field.default).lower() if isinstance(field.default, bool) \
            else field.default
        how = f"pass {expected}, e.g. {err.full_key}={default} (its default)"
    return f"{err.full_key}: expected {expected}, got {got}; {how}. `omni-rl show-config` prints every key's value"


def type_name(tp: Any) -> str:
    """How a schema field's type reads in an error: `a float`, `an integer or null`, `a list of strings`."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union:
        return " or ".join(type_name(a) for a in args) + " or null"
    if typing.get_origin(tp) is list:
        items = {float: "floats", int: "integers", str: "strings", bool: "booleans"}.get(args[0] if args else None)
        return f"a list of {items} ([a,b])" if items else "a list ([a,b])"
    if typing.get_origin(tp) is dict:
        return "a mapping ({key: value})"
    if dataclasses.is_dataclass(tp):
        return "a group of keys"
    return {float: "a float", int: "an integer", bool: "true or false", str: "a string"}.get(tp, f"a {tp}")
