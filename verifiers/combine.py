"""The reward of one response: outcome (a verifier) combined with the format score.

Spec (RECIPE "Verifier semantics"): final reward = ``(1 - w_fmt) * outcome + w_fmt * format``, ``w_fmt = 0.1``.
With several boxed answers after the reasoning, the outcome is graded on the boxed answers (the best of the first
``MAX_GRADED_BOXES`` = 3) and, as in the format score, multiplied by 0.9 per extra think tag or extra box::

    counts  = format_counts(response)           # think tags, boxes after the last </think>
    format  = 0 if no </think> or no box else 0.9 ** counts.extra
    outcome = verifier(response, answer)                               if <= 1 box
            = max(verifier("\\boxed{b}", answer) for b in boxes[:3])    if >= 2 boxes
    outcome *= 0.9 ** counts.extra
    reward  = (1 - w) * outcome + w * format

Abstention (``omni_rl.verifiers.abstention``) is decided here, the same way for every verifier. A row is
*unanswerable* when ``unanswerable=True`` (the row's ``"unanswerable": true``) or its gold answer is itself an
abstention marker (``"unanswerable"``, ``"none of the above"``, ...). Each graded answer (the response, or each of the
first 3 boxes) scores::

    unanswerable row:  1 if the final answer abstains else 0          (the verifier is not called)
    answerable row:    0 if the final answer abstains else verifier(...)

then the partial-credit multiplier and the format score apply as above. ``abstention_markers`` (a list of phrases,
``verify.abstention_markers``) replaces the built-in markers.

A verifier that raises, or returns something that is not a finite number, gives ``outcome = reward = 0`` and the
error text in ``RewardResult.error`` (the pool counts and logs these; nothing is swallowed silently). Scores outside
[0, 1] are clamped. ``reward`` itself never raises for a bad response; a bad *verifier name* is an error result too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .abstention import final_answer, gold_is_marker, is_abstention
from .format_score import format_counts
from .registry import get_verifier

__all__ = ["RewardResult", "reward", "score_one_safe", "MAX_GRADED_BOXES", "DEFAULT_FORMAT_WEIGHT"]

log = logging.getLogger(__name__)

MAX_GRADED_BOXES = 3
DEFAULT_FORMAT_WEIGHT = 0.1


@dataclass
class RewardResult:
    outcome: float  # verifier score after the partial-credit multiplier, in [0, 1]
    format: float  # format score in [0, 1]
    reward: float  # (1 - w) * outcome + w * format
    error: str | None = None  # "timeout", or "<ExceptionType>: message" when the verifier failed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 500 else text[:497] + "..."


def _as_score(v: Any) -> float:
    if isinstance(v, bool):
        v = float(v)
    if not isinstance(v, (int, float)):
        try:
            v = float(v)  # numpy scalars
        except (TypeError, ValueError):
            raise TypeError(f"verifier returned {type(v).__name__}, expected a float in [0, 1]") from None
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"verifier returned a non-finite score {v!r}")
    return min(1.0, max(0.0, v))


def reward(response: str, verifier: Any, answer: Any, format_weight: float = DEFAULT_FORMAT_WEIGHT, *,
           unanswerable: bool = False, abstention_markers: Sequence[str] | None = None,
           **verifier_kwargs: Any) -> RewardResult:
    """Outcome + format reward of one response (module docstring). ``verifier`` is a name or a callable;
    ``unanswerable``: the row's flag; ``abstention_markers``: None for the built-in markers."""
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must be in [0, 1], got {format_weight}")
    if not isinstance(response, str):
        return RewardResult(0.0, 0.0, 0.0, f"TypeError: response must be str, got {type(response).__name__}")
    counts = format_counts(response)
    fmt = counts.multiplier if (counts.closes and counts.boxes) else 0.0
    try:
        fn = get_verifier(verifier)
        if not isinstance(unanswerable, bool):
            raise TypeError(f"unanswerable must be true or false, got {unanswerable!r:.80}")
        abstain_gold = unanswerable or gold_is_marker(answer, abstention_markers)

        def grade(text: str, final: str) -> float:
            abstained = is_abstention(final, abstention_markers)
            if abstain_gold or abstained:
                return float(abstain_gold and abstained)
            if verifier == "format":
                return 1.0 if fmt else 0.0
            return _as_score(fn(text, answer, **verifier_kwargs))

        if len(counts.boxes) > 1:
            graded = [grade(f"\\boxed{{{b}}}", b) for b in counts.boxes[:MAX_GRADED_BOXES]]
        else:
            graded = [grade(response, final_answer(response))]
        outcome = max(graded) * counts.multiplier
    except Exception as e:  # noqa: BLE001 -- any verifier failure scores 0 and is reported in .error
        log.debug("verifier %r failed", verifier, exc_info=True)
        return RewardResult(0.0, fmt, 0.0, _error_text(e))
    return RewardResult(outcome, fmt, (1.0 - format_weight) * outcome + format_weight * fmt)


def score_one_safe(item: dict[str, Any], *, format_weight: float = DEFAULT_FORMAT_WEIGHT) -> RewardResult:
    """Score one item ``{verifier, answer, response, verifier_kwargs?, unanswerable?, abstention_markers?}`` in this
    process; never raises. ``unanswerable`` (default false) is the row's flag; ``abstention_markers`` (default None:
    the built-in markers) is the scoring setting the pool puts in every item it sends.

    No deadline is enforced here (mathruler bounds its own sympy time in the main thread); use
    ``omni_rl.verifiers.pool`` for hard per-item deadlines.
    """
    try:
        kwargs = item.get("verifier_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise TypeError(f"verifier_kwargs must be a dict, got {type(kwargs).__name__}")
        for key in ("unanswerable", "abstention_markers"):
            if key in kwargs:
                raise ValueError(f"verifier_kwargs.{key}: give it as the item's own {key!r} field")
        return reward(item["response"], item["verifier"], item.get("answer"), format_weight,
                      unanswerable=item.get("unanswerable", False),
                      abstention_markers=item.get("abstention_markers"), **kwargs)
    except Exception as e:  # noqa: BLE001 -- malformed item: score 0 with the reason
        return RewardResult(0.0, 0.0, 0.0, _error_text(e))
