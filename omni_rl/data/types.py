"""Shared data types that flow between data loading, rollout, verification and training.

Glossary (one name per thing across the codebase): a *sample* is one dataset row (one prompt); a *prompt* is a
sample rendered through the model's processor (token ids + processed media), held ONCE and referenced by its G
*rollouts*. `logp` = per-token log-probability of the sampled token.

Nothing heavy is imported here (torch only for type hints at runtime-free level): this module is imported by the
driver, rollout workers and trainer workers alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODALITIES = ("text", "image", "video", "audio", "omni")
MEDIA_KINDS = ("image", "video", "audio")  # the media parts of a message (`{"type": kind, kind: path}`)


@dataclass
class Sample:
    """One validated dataset row. `messages` is an OpenAI-style chat list; media parts hold absolute local paths."""

    id: str
    source: str
    messages: list[dict[str, Any]]
    verifier: str
    answer: Any
    verifier_kwargs: dict[str, Any] = field(default_factory=dict)
    modality: str = "text"  # one of MODALITIES; derived from the media parts when the row does not give it
    unanswerable: bool = False
    pass_rate: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown row fields, carried through untouched


@dataclass
class Prompt:
    """A sample rendered for generation AND training: identical token ids on both sides.

    `prompt_ids` are the fully expanded prompt token ids (media placeholders already expanded to the number of
    feature tokens), exactly what the trainer scores. `vllm_inputs` is what the rollout worker hands to
    `LLM.generate` for this prompt (token ids + multi_modal_data); `mm_tensors` are the processor outputs the trainer
    feeds the HF model (pixel_values, image_grid_thw, input_features, ...). Both are built once per prompt and shared
    by its G rollouts (media dedup). `media_bytes` = bytes of the decoded media held once.
    """

    sample: Sample
    prompt_ids: list[int]
    vllm_inputs: dict[str, Any]
    mm_tensors: dict[str, Any] = field(default_factory=dict)  # str -> torch.Tensor
    media_bytes: int = 0


@dataclass
class Rollout:
    """One generated response. Media never travels back from vLLM: only tokens, logprobs and text."""

    prompt_index: int  # index of its Prompt in the step's prompt list
    token_ids: list[int]
    logprobs: list[float]  # sampled-token logprobs from vLLM (raw model distribution, see rollout worker)
    text: str
    finish_reason: str  # "stop" | "length" | ...
    policy_version: int


@dataclass
class ScoredRollout:
    rollout: Rollout
    reward: float
    outcome: float
    format: float
    verifier_error: str | None = None
    advantage: float = 0.0
