"""Trainer-side log-probs of a rollout, to compare with what the rollout engine reported.

The rollout worker returns vLLM's sampled-token log-probs in raw mode (`logprobs_mode="raw_logprobs"`: log-softmax
of the model's logits before temperature / top-p / logit bias), so for the same weights, token ids and media they
must equal the HF model's log-softmax at every response position, whatever the sampling temperature. That identity
is what makes the GSPO ratio honest (`old_logp` from the engine, `logp` from the trainer) and it is checked per
modality in tests/rollout/test_parity.py (mean |diff| <= 1e-4 in float32). The RL loop logs the same quantity as
`rollout/logp_mismatch_*` (see `logp_mismatch`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from omni_rl.data.types import Prompt


def hf_sequence_logp(model: Any, prompt: Prompt, response_ids: Sequence[int]) -> Tensor:
    """`[R]` float32 log p(response_ids[t] | prompt, response_ids[:t]) under the HF `model` (no gradient).

    One forward over `prompt.prompt_ids + response_ids` (the prompt ids are already expanded to the media feature
    count) with the prompt's `mm_tensors` (`omni_rl.models.policy.sequence_inputs` pads per-token tensors such as
    `mm_token_type_ids` over the response). The log-softmax is taken in float32 over the full vocabulary, like
    vLLM's raw log-probs. Only the last R+1 positions' logits are materialised when the model's forward accepts
    `logits_to_keep` (Qwen3, Qwen2.5-VL); the Omni thinker and Qwen2-Audio compute all positions.
    """
    from omni_rl.models.policy import sequence_inputs

    n = len(response_ids)
    if n == 0:
        return torch.zeros(0, dtype=torch.float32)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) if isinstance(v, Tensor) else v
              for k, v in sequence_inputs(prompt.prompt_ids, prompt.mm_tensors, list(response_ids)).items()}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        inputs["logits_to_keep"] = n + 1
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits[0, -(n + 1):-1].float()  # [R, V]: position t predicts t+1
    targets = torch.tensor(list(response_ids), dtype=torch.long, device=device)
    return logits.log_softmax(-1).gather(-1, targets[:, None])[:, 0].cpu()


def logp_mismatch(trainer_logp: Sequence[Tensor], rollout_logp: Sequence[Sequence[float]]) -> dict[str, float]:
    """Mean and max |trainer - rollout| over all response tokens of paired sequences, and the mean of
    exp(trainer - rollout) - 1 (how far the token-level ratio of an on-policy step is from 1)."""
    diffs = [t.double() - torch.tensor(list(r), dtype=torch.float64) for t, r in zip(trainer_logp, rollout_logp,
                                                                                      strict=True)]
    flat = torch.cat(diffs) if diffs else torch.zeros(0, dtype=torch.float64)
    if flat.numel() == 0:
        return {"rollout/logp_mismatch_mean": 0.0, "rollout/logp_mismatch_max": 0.0, "rollout/ratio_error": 0.0}
    return {"rollout/logp_mismatch_mean": flat.abs().mean().item(),
            "rollout/logp_mismatch_max": flat.abs().max().item(),
            "rollout/ratio_error": flat.exp().sub(1.0).mean().item()}
