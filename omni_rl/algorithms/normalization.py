"""Loss normalisation across ranks and micro-batches: the single rule every trainer uses.

Rule: losses return per-sequence values ``[B]``. Once per optimizer step, before the first micro-batch, the trainer
computes ``global_num_seqs`` = the all-reduced (over data-parallel ranks) sum over ALL micro-batches of that step of
the sequence weights (i.e. the number of sequences that contribute; overlong/log-prob-error filtered sequences have
weight 0 and are not counted). Each micro-batch then backpropagates

    loss_mb = sum_i(per_seq_loss_i * weight_i) / global_num_seqs

gradients are accumulated over micro-batches and SUM-all-reduced over ranks (FSDP/DDP average instead: multiply by
the world size, or pass ``global_num_seqs / world_size``). The result equals the mean over the step's contributing
sequences on one rank with one micro-batch, whatever the split (tests/algorithms/test_normalization.py).
"""

from __future__ import annotations

import torch
from torch import Tensor


def normalized_sum(per_seq_loss: Tensor, weights: Tensor | None, global_num_seqs: int | float | Tensor) -> Tensor:
    """``sum_i(per_seq_loss_i * weights_i) / max(global_num_seqs, 1)`` -> scalar.

    per_seq_loss: [B]; weights: [B] (None = all ones); global_num_seqs: step-wide count, the same on every rank and
    micro-batch. A zero count (every sequence filtered) gives a zero loss, not NaN.
    """
    if weights is not None:
        per_seq_loss = per_seq_loss * weights.to(per_seq_loss.dtype)  # [B]
    if isinstance(global_num_seqs, Tensor):
        denom = global_num_seqs.to(per_seq_loss.dtype).clamp(min=1)
    else:
        denom = max(float(global_num_seqs), 1.0)
    return per_seq_loss.sum() / denom
