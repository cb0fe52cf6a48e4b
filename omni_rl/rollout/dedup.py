"""Media dedup bookkeeping for one generation step (pure Python; the Ray side is in RolloutGroup).

The G rollouts of a prompt share ONE copy of its decoded media: `RolloutGroup.generate` puts each unique prompt's
vLLM inputs in the Ray object store once, the worker that serves it fetches it once and sends ONE vLLM request with
n=G (vLLM processes and encodes the media once for the G samples). The naive path, one request per rollout each
carrying its own media, moves G copies. The step metrics make the difference visible:

  media/unique_bytes     decoded media bytes of the step's distinct prompts (one copy each)
  media/logical_bytes    what G copies per prompt would weigh: the naive per-rollout path
  media/physical_bytes   what was put in the object store (the dedup path: == unique_bytes)
  media/sent_bytes       what workers fetched from it (== physical_bytes unless a shard was retried)
  media/physical_over_unique   goal <= 1.1 (1.0 when every prompt is put exactly once)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omni_rl.data.types import Prompt


def media_nbytes(obj: Any) -> int:
    """Bytes of the decoded media inside `obj` (nested dicts / lists / tuples of numpy arrays, PIL images, tensors;
    `(waveform, sample_rate)` counts the waveform; strings and numbers count 0)."""
    if obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return 0
    if isinstance(obj, Mapping):
        return sum(media_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(media_nbytes(v) for v in obj)
    if hasattr(obj, "nbytes"):  # numpy
        return int(obj.nbytes)
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # torch
        return int(obj.element_size() * obj.nelement())
    if hasattr(obj, "size") and hasattr(obj, "getbands"):  # PIL image
        width, height = obj.size
        return int(width * height * len(obj.getbands()))
    return 0


def media_bytes(prompt: Prompt | Mapping[str, Any]) -> int:
    """Decoded media bytes of one prompt, counted once (`multi_modal_data` of its vLLM inputs)."""
    inputs = prompt.vllm_inputs if isinstance(prompt, Prompt) else prompt
    return media_nbytes(inputs.get("multi_modal_data"))


def unique_inputs(prompts: Sequence[Prompt]) -> tuple[list[dict[str, Any]], list[int]]:
    """`(inputs, slot)`: the distinct vLLM input dicts of the step (by identity: a row sampled twice in one step
    renders to the same cached Prompt) and, per prompt, the index of its input in that list."""
    inputs: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    slot = []
    for p in prompts:
        key = id(p.vllm_inputs)
        if key not in seen:
            seen[key] = len(inputs)
            inputs.append(p.vllm_inputs)
        slot.append(seen[key])
    return inputs, slot


def media_metrics(prompts: Sequence[Prompt], *, n: int, physical_bytes: int, sent_bytes: int) -> dict[str, float]:
    """The step's media accounting (see the module docstring); `physical_bytes` / `sent_bytes` are measured by the
    caller on what it actually put in / fetched from the object store."""
    inputs, _ = unique_inputs(prompts)
    unique = sum(media_bytes(i) for i in inputs)
    return {
        "media/unique_bytes": float(unique),
        "media/logical_bytes": float(n * sum(media_bytes(p) for p in prompts)),
        "media/physical_bytes": float(physical_bytes),
        "media/sent_bytes": float(sent_bytes),
        "media/physical_over_unique": float(physical_bytes / unique) if unique else 1.0,
    }
