"""Trainer state on disk without pickle: `<stem>.json` (the structure: step counters, scheduler state, AdamW
hyper-parameters, the objective's state, and for every tensor a reference) + `<stem>.safetensors` (the tensors:
AdamW moments and step counts, the RNG states). A checkpoint directory is untrusted input, so nothing in it is
unpickled: JSON is parsed, safetensors holds raw tensor bytes, and anything that does not fit the layout below is
refused with a reason.

JSON encoding of a state tree: str / int / float / bool / None and str-keyed dicts and lists are themselves; the rest
is one tagged object each:

    {"__tensor__": "optimizer.state.3.exp_avg"}                       a tensor, stored under that safetensors key
    {"__tensor__": ..., "shard_of": [64, 32], "placements": ["Shard(dim=0)"]}   this rank's part of a sharded tensor
    {"__tuple__": [...]}                                               a tuple (AdamW's betas)
    {"__int_keys__": {"3": ...}}                                       a dict with int keys (optimizer.state)

A sharded tensor is an FSDP2 DTensor (AdamW's moments of a sharded parameter): its local shard is stored with the
whole tensor's shape and the placements, and `load_state` hands it back as a `LocalShard`; `as_shard_of` rebuilds the
DTensor around the live parameter after checking that the shard has the shape this rank's part of that parameter has
now (same world size, same model). torch.distributed.checkpoint is not used: its `.metadata` file is a pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT = "omni-rl-trainer-state/1"
_TAGS = ("__tensor__", "__tuple__", "__int_keys__")


@dataclass(frozen=True)
class LocalShard:
    """One rank's part of a sharded tensor, as read from disk: `local` and the whole tensor's shape / placements."""

    local: Tensor
    shard_of: tuple[int, ...]
    placements: tuple[str, ...]


def state_files(stem: Path) -> tuple[Path, Path]:
    """(`<stem>.json`, `<stem>.safetensors`)."""
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")


def save_state(state: dict[str, Any], stem: Path, **meta: Any) -> None:
    """Write `state` (dicts, lists, tuples, JSON scalars, tensors, DTensors) as `<stem>.json` + `<stem>.safetensors`;
    `meta` (JSON scalars: strategy, rank, world size) goes into the JSON next to it."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    tree = _encode(state, "", tensors)
    json_file, tensor_file = state_files(stem)
    save_file(tensors, str(tensor_file), metadata={"format": FORMAT})
    json_file.write_text(json.dumps({"format": FORMAT, **meta, "state": tree}, indent=1, allow_nan=True))


def read_meta(stem: Path) -> dict[str, Any]:
    """The JSON file's top level without the state (format checked)."""
    json_file, _ = state_files(stem)
    try:
        doc = json.loads(json_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{json_file} is not a trainer-state JSON file ({e}); it cannot be resumed") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "state" not in doc:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{json_file}: format {found!r}, expected {FORMAT!r} with a 'state'; it cannot be resumed")
    return doc


def load_state(stem: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state tree, meta) written by `save_state`. Sharded tensors come back as `LocalShard`s. Raises ValueError
    naming the file when either file does not fit the layout (a tensor reference with no tensor, an unknown tag)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    doc = read_meta(stem)
    json_file, tensor_file = state_files(stem)
    try:
        tensors = load_file(str(tensor_file))
    except (SafetensorError, FileNotFoundError) as e:
        raise ValueError(f"{tensor_file} is not a readable safetensors file ({e}); it cannot be resumed") from None
    try:
        state = _decode(doc.pop("state"), tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"{json_file} does not fit the trainer-state layout ({e}); it cannot be resumed") from None
    if not isinstance(state, dict):
        raise ValueError(f"{json_file}: the state is a {type(state).__name__}, expected an object")
    return state, doc


def as_shard_of(saved: Any, param: Tensor, name: str) -> Any:
    """A saved optimizer value for `param`: a LocalShard becomes a DTensor laid out like `param` (its local shape
    must equal this rank's part of `param`); a plain tensor or number stays as it is unless `param` is sharded."""
    from torch.distributed.tensor import DTensor

    sharded = isinstance(param, DTensor)
    if isinstance(saved, LocalShard):
        placements = tuple(str(p) for p in param.placements) if sharded else ()
        here = tuple(param.to_local().shape) if sharded else None
        if (not sharded or saved.shard_of != tuple(param.shape) or saved.placements != placements
                or tuple(saved.local.shape) != here):
            raise ValueError(f"optimizer state of {name}: saved shard {tuple(saved.local.shape)} of "
                             f"{saved.shard_of} ({', '.join(saved.placements)}), this rank holds {here} of "
                             f"{tuple(param.shape)}: resume with the model and trainer.num_workers it was saved with")
        return DTensor.from_local(saved.local, param.device_mesh, param.placements, run_check=False,
                                  shape=param.shape, stride=param.stride())
    if sharded and isinstance(saved, Tensor) and saved.dim() > 0:
        raise ValueError(f"optimizer state of {name} was saved whole, but the parameter is sharded: resume with the "
                         "trainer.strategy it was saved with")
    return saved


def _encode(obj: Any, path: str, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, Tensor):
        return _encode_tensor(obj, path, tensors)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, int) and not isinstance(k, bool) for k in obj) and obj:
            return {"__int_keys__": {str(k): _encode(v, f"{path}.{k}", tensors) for k, v in obj.items()}}
        bad = [k for k in obj if not isinstance(k, str) or k.startswith("__")]
        if bad:
            raise TypeError(f"trainer state at {path or '<root>'}: keys {bad[:3]} (str keys not starting with '__', "
                            "or all int keys)")
        return {k: _encode(v, f"{path}.{k}" if path else k, tensors) for k, v in obj.items()}
    raise TypeError(f"trainer state at {path}: a {type(obj).__name__} has no JSON / safetensors form")


def _encode_tensor(t: Tensor, path: str, tensors: dict[str, Tensor]) -> dict[str, Any]:
    from torch.distributed.tensor import DTensor

    node: dict[str, Any] = {"__tensor__": path}
    if isinstance(t, DTensor):
        node.update(shard_of=list(t.shape), placements=[str(p) for p in t.placements])
        t = t.to_local()
    tensors[path] = t.detach().to("cpu").contiguous()
    return node


def _decode(node: Any, tensors: dict[str, Tensor]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        raise TypeError(f"unexpected JSON value {node!r}")
    tags = [k for k in node if k in _TAGS]
    if not tags:
        if any(k.startswith("__") for k in node):
            raise ValueError(f"unknown tag in {sorted(node)}")
        return {k: _decode(v, tensors) for k, v in node.items()}
    tag = tags[0]
    if tag == "__tuple__" and set(node) == {tag} and isinstance(node[tag], list):
        return tuple(_decode(v, tensors) for v in node[tag])
    if tag == "__int_keys__" and set(node) == {tag} and isinstance(node[tag], dict):
        return {int(k): _decode(v, tensors) for k, v in node[tag].items()}
    if tag == "__tensor__" and isinstance(node[tag], str):
        if node[tag] not in tensors:
            raise KeyError(f"tensor {node[tag]!r} is referenced but not stored")
        t = tensors[node[tag]]
        if set(node) == {tag}:
            return t
        if set(node) == {tag, "shard_of", "placements"}:
            return LocalShard(t, tuple(int(n) for n in node["shard_of"]), tuple(str(p) for p in node["placements"]))
    raise ValueError(f"malformed {tag} entry {sorted(node)}")


def check_rng_state(t: Any, what: str) -> Tensor:
    """An RNG state read from disk: a 1-D uint8 tensor (what torch.set_rng_state takes)."""
    if not isinstance(t, Tensor) or t.dtype != torch.uint8 or t.dim() != 1:
        raise ValueError(f"{what}: expected a 1-D uint8 tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    return t
