"""``format``: does the response have the shape ``<think> ... </think> ... \\boxed{answer}``?

Spec (RECIPE "Verifier semantics"): if the response has ``</think>`` but no ``<think>`` (the chat template injected
the opening tag into the prompt), treat one as present. 1.0 iff exactly one think block and exactly one ``\\boxed{}``
after it; partial credit otherwise, 0.9 per extra think tag or extra box. Concretely (``format_counts``):

* no complete think block (no ``</think>``) or no box after the last ``</think>``: 0;
* otherwise ``0.9 ** (extra_think_tags + extra_boxes)`` where ``extra_think_tags = (opens - 1) + (closes - 1)``
  (a missing opening tag counts as one present) and ``extra_boxes = boxes after the last </think> - 1``.

Boxes inside the reasoning do not count. ``omni_rl.verifiers.combine.reward`` uses the same counts to discount the
outcome score. ``answer`` is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .extract import THINK_CLOSE, THINK_OPEN, find_boxed

__all__ = ["format_score", "format_counts", "FormatCounts", "PARTIAL_CREDIT"]

PARTIAL_CREDIT = 0.9


@dataclass(frozen=True)
class FormatCounts:
    opens: int  # <think> tags, counting a template-injected one
    closes: int  # </think> tags
    boxes: list[str]  # boxed answers after the last </think> (at most extract.MAX_BOXES)

    @property
    def extra(self) -> int:
        """Extra think tags + extra boxes (the exponent of the 0.9 partial credit)."""
        return max(self.opens - 1, 0) + max(self.closes - 1, 0) + max(len(self.boxes) - 1, 0)

    @property
    def multiplier(self) -> float:
        return PARTIAL_CREDIT ** self.extra


def format_counts(response: str) -> FormatCounts:
    """Think tags and answer boxes of a response (module docstring)."""
    if not isinstance(response, str):
        return FormatCounts(0, 0, [])
    opens = response.count(THINK_OPEN)
    closes = response.count(THINK_CLOSE)
    if closes and not opens:
        opens = 1  # the chat template injected <think>
    last = response.rfind(THINK_CLOSE)
    after = response[last + len(THINK_CLOSE):] if last >= 0 else response
    return FormatCounts(opens, closes, find_boxed(after))


def format_score(response: str, answer: Any = None, **_: Any) -> float:
    """1.0 for exactly ``<think>..</think>`` then one ``\\boxed{}``; 0.9 per extra tag/box; 0 if either is missing."""
    c = format_counts(response)
    if c.closes == 0 or not c.boxes:
        return 0.0
    return c.multiplier
