"""FSDP2 for the trainer (`trainer.strategy=fsdp2`): parameters, gradients and AdamW state sharded over the ranks
with `torch.distributed.fsdp.fully_shard` (gloo on CPU, NCCL on GPU).

Units. Every decoder layer is a unit of its own (gathered by its own forward, freed after it). Everything else (the
embeddings, the media encoders, projectors, final norm, LM head) is one root unit around a `Shell`, a module whose
forward runs a closure: the trainer calls `shell(lambda: <score + loss>)`, so the root's parameters are gathered for
exactly one micro-batch's forward and its gradients reduce-scattered after that micro-batch's backward. The media
encoders are called directly by the encoder-once path (not through the model's forward); as part of the root they
have no collectives of their own, so a rank whose micro-batch has no image or audio cannot deadlock on them.

Every rank must issue the same collectives in the same order:
- every trainable parameter gets a gradient on every rank (FSDP2 reduce-scatters only the parameters that have
  one, so a rank without audio, or a MoE expert no token reached, would make the ranks' buffers differ): a forward
  hook on each unit adds 0 * (one element of each of its trainable parameters) to its output (`GradAnchor`);
- every rank runs the same number of forwards: ranks with fewer micro-batches run padding micro-batches whose loss
  is multiplied by 0 (`pad_batch`);
- the weights for vLLM / checkpoints are gathered by every rank together (`full_tensor`), one tensor at a time.
Gradients are summed over ranks (divide factor 1), as in the replicated strategy: the loss is already normalised by
the step's global count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from omni_rl.config.schema import TRAINER_STRATEGIES as STRATEGIES  # noqa: E402  (re-exported)


class Shell(nn.Module):
    """The FSDP2 root: holds the model, runs a closure as its forward (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[[], Any]) -> Any:
        return fn()


class GradAnchor:
    """Forward hook: output + 0 * sum(first element of each trainable parameter the unit owns), so each of them gets
    a (zero) gradient even when this rank's input does not reach it. The parameters are looked up at call time (FSDP2
    swaps the registered sharded ones for the gathered ones during the forward). `skip`: submodules that are units of
    their own."""

    def __init__(self, skip: tuple[nn.Module, ...] = ()):
        self.skip = skip

    def zero(self, module: nn.Module) -> Tensor | None:
        """0 * (one element of each trainable parameter the unit owns), or None (no grad mode / no such parameter)."""
        if not torch.is_grad_enabled():
            return None
        skipped = {id(p) for s in self.skip for p in s.parameters()}
        params = [p for p in module.parameters() if p.requires_grad and id(p) not in skipped]
        if not params:
            return None
        return torch.stack([p.reshape(-1)[0].to(torch.float64) for p in params]).sum() * 0.0

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        zero = self.zero(module)
        if zero is None:
            return output
        if isinstance(output, Tensor):
            return output + zero.to(output.dtype)
        if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
            return (output[0] + zero.to(output[0].dtype), *output[1:])
        raise TypeError(f"GradAnchor cannot add to a {type(output).__name__} output of {type(module).__name__}")


def decoder_layers(decoder: nn.Module) -> list[nn.Module]:
    """The decoder's layer list (`.layers`)."""
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(decoder).__name__} has no `layers` ModuleList: FSDP2 units need the decoder layers")
    return list(layers)


def shard(model: nn.Module, decoder: nn.Module, *, mp_dtype: torch.dtype | None = None) -> Shell:
    """Apply FSDP2 to `model` in place (decoder layers, then the root `Shell`); returns the shell. Call after
    freezing (requires_grad) and before building the optimizer. `mp_dtype`: bf16 compute with fp32 master weights
    (MixedPrecisionPolicy) when given."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=mp_dtype, reduce_dtype=torch.float32) if mp_dtype else None
    kwargs = {"mp_policy": policy} if policy is not None else {}
    layers = decoder_layers(decoder)
    for layer in layers:
        layer.register_forward_hook(GradAnchor())  # before fully_shard: runs before FSDP2 frees the gathered weights
        fully_shard(layer, **kwargs)
        _sum_gradients(layer)
    shell = Shell(model)
    shell.register_forward_hook(_RootAnchor(tuple(layers)))
    fully_shard(shell, **kwargs)
    _sum_gradients(shell)
    return shell


def _sum_gradients(unit: Any) -> None:
    """Reduce-scatter gradients as a plain SUM over ranks, like the replicated strategy's all-reduce (the loss is
    already normalised by the step's global count). A divide factor of 1 alone would make FSDP2 use PREMUL_SUM for
    float32 / bfloat16, which gloo does not have; forcing sum-type collectives keeps it a SUM."""
    unit.set_gradient_divide_factor(1.0)
    unit.set_force_sum_reduction_for_comms(True)


class _RootAnchor(GradAnchor):
    """GradAnchor for the shell, whose output is `(loss, aux)`: the zero goes into the loss."""

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        loss, aux = output
        zero = self.zero(module) if isinstance(loss, Tensor) else None
        return output if zero is None else (loss + zero.to(loss.dtype), aux)


def checkpoint_layers(decoder: nn.Module) -> int:
    """Activation checkpointing per decoder layer (`trainer.activation_checkpointing`): each layer keeps only its
    input for the backward and recomputes its activations there (torch's composable `checkpoint`, which keeps the
    parameter names and composes with FSDP2 when applied before `fully_shard`). Returns the number of layers."""
    from torch.distributed._composable import checkpoint

    layers = decoder_layers(decoder)
    for layer in layers:
        checkpoint(layer)
    return len(layers)


def weight_block(name: str) -> str:
    """The unit a weight refit and a sharded load never split: the name up to its first numeric part (`model.layers.3`,
    `visual.blocks.0`), or the weight's module for names without one (`model.embed_tokens`, `lm_head`)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return name.rpartition(".")[0]


def load_sharded(model: nn.Module, checkpoint_dir: Any, checkpoint_name: Callable[[str], str],
                 device: torch.device) -> int:
    """Give a sharded model built on the meta device (`load_model(..., empty=True)`, then `shard`) its weights:
    allocate this rank's shards (`to_empty`; the real buffers, e.g. rotary frequencies, are put back), then read the
    checkpoint one block at a time (`weight_block`: a decoder layer, else a module) and keep this rank's part of
    each tensor (`set_model_state_dict`, full-state-dict mode). So a rank never holds more than its shards plus one
    block of whole tensors, instead of the whole model. A weight tied to another one (an LM head sharing the
    embedding) may be absent from the checkpoint. Returns the number of tensors read; raises KeyError naming what the
    checkpoint lacks before reading anything."""
    import json
    from pathlib import Path

    from safetensors import safe_open
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict


    ckpt = Path(checkpoint_dir)
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        where = {k: ckpt / f for k, f in json.loads(index.read_text())["weight_map"].items()}
    else:
        where = {}
        for f in sorted(ckpt.glob("*.safetensors")):
            with safe_open(str(f), "pt") as h:
                where.update({k: f for k in h.keys()})
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    model.to_empty(device=device)
    with torch.no_grad():
        for n, b in model.named_buffers():
            b.copy_(buffers[n])
    names_of: dict[int, list[str]] = {}  # tied parameters: one object, several names
    for n, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(n)
    tied = {n: names for names in names_of.values() if len(names) > 1 for n in names}
    state = model.state_dict()
    blocks: dict[str, list[str]] = {}
    for key in state:
        blocks.setdefault(weight_block(key), []).append(key)
    wanted: list[dict[str, str]] = []  # per block: state-dict key -> checkpoint name, checked before reading
    missing = []
    for keys in blocks.values():
        wanted.append({})
        for key in keys:
            name = checkpoint_name(key)
            if name in where:
                wanted[-1][key] = name
            elif not any(checkpoint_name(other) in where for other in tied.get(key, ())):
                missing.append(name)
    if missing:
        raise KeyError(f"{ckpt} lacks {len(missing)} weights, e.g. {sorted(missing)[:3]}")
    read = 0
    for full in filter(None, wanted):
        with contextlib.ExitStack() as stack:  # the files are mapped for this block only
            handles = {f: stack.enter_context(safe_open(str(f), "pt")) for f in {where[n] for n in full.values()}}
            tensors = {key: handles[where[name]].get_tensor(name) for key, name in full.items()}
            set_model_state_dict(model, tensors, options=StateDictOptions(full_state_dict=True, strict=False))
        read += len(tensors)
        del tensors
    return read


def full_tensor(t: Tensor) -> Tensor:
    """The whole tensor of a sharded DTensor (a collective: every rank must call it, in the same order); a plain
    tensor as it is."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def pad_batch(pad_id: int) -> Any:
    """A one-sequence text micro-batch for ranks that run out of micro-batches (its loss is multiplied by 0)."""
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    return TrainBatch(prompts=[TrainPrompt(prompt_ids=[pad_id, pad_id], mm_tensors={}, uid="fsdp-pad")],
                      sequences=[TrainSequence(prompt_index=0, response_ids=[pad_id], advantage=0.0)])
