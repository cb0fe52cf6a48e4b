"""``asr``: ``max(0, 1 - WER)`` of the transcript against the reference, after English text normalisation.

Spec (RECIPE "Verifier semantics"): 1 - WER, clamp to [0, 1], after English text normalisation (the Open ASR
leaderboard uses the Whisper English normaliser). Both sides go through
``whisper_normalizer.english.EnglishTextNormalizer`` (lower case, punctuation removed, contractions expanded, British
-> American spelling, spelled-out numbers and currency to digits: "twenty dollars" = "$20"), then ``jiwer.wer``.

The hypothesis is the text after the reasoning (inside the last ``\\boxed{}`` if there is one), with a leading
``Transcript:`` / ``Transcription:`` label and surrounding quotes removed. ``answer`` is the reference transcript.
Empty reference (after normalisation): 1.0 if the hypothesis is empty too, else 0.0. Unknown keyword arguments are
ignored.
"""

from __future__ import annotations

import re
from typing import Any

from .extract import last_boxed, strip_reasoning

__all__ = ["asr", "normalize_transcript", "word_error_rate"]

_LABEL_RE = re.compile(r"^\s*(?:\*\*)?(?:the\s+)?(?:transcript(?:ion)?|text|answer)(?:\*\*)?\s*:\s*(?:\*\*)?", re.I)

_normalizer: Any = None


def normalize_transcript(text: str) -> str:
    """The Whisper English normaliser (one shared instance; it loads a spelling table once)."""
    global _normalizer
    if _normalizer is None:
        from whisper_normalizer.english import EnglishTextNormalizer

        _normalizer = EnglishTextNormalizer()
    return " ".join(_normalizer(text).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of normalised strings (both already normalised, reference non-empty)."""
    import jiwer

    return float(jiwer.wer(reference, hypothesis)) if hypothesis else 1.0


def asr(response: str, answer: Any, **_: Any) -> float:
    """``max(0, 1 - WER)`` (module docstring)."""
    if not isinstance(answer, str):
        raise TypeError(f"asr answer must be the reference transcript (str), got {type(answer).__name__}")
    region = strip_reasoning(response)
    boxed = last_boxed(region)
    hyp = boxed if boxed is not None else region
    hyp = _LABEL_RE.sub("", hyp).strip().strip('"\u201c\u201d').strip()
    ref_n = normalize_transcript(answer)
    hyp_n = normalize_transcript(hyp)
    if not ref_n:
        return 1.0 if not hyp_n else 0.0
    return min(1.0, max(0.0, 1.0 - word_error_rate(ref_n, hyp_n)))
