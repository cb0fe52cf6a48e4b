"""The trainer's per-family forward: `FamilyForward`, the pieces a family's model is run by (embedding, encoders,
positions, decoder, head). This base is the plain HF causal LM's (the `text` family); each multimodal family's
subclass lives in its module in `omni_rl.models.families`, and `omni_rl.training.forward.score` runs them.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


class FamilyForward:
    """A family's forward pieces around a loaded model (`ModelFamily.forward`). Subclasses override `encode` /
    `positions` (and `decoder` / `embed` / `head` where the LM sits elsewhere in the module)."""

    family = "text"
    # the decoder keeps its keys / values in a transformers DynamicCache that `prompt_once` continues from
    prompt_once = True
    prompt_once_missing = ""  # why not, where prompt_once is False
    # the decoder runs several sequences packed in one row, kept apart by position ids that restart at 0 (transformers
    # builds the block-diagonal causal mask from them): attention decoders with 1-D positions
    packing = True
    packing_missing = ""  # why not, where packing is False

    def __init__(self, model: Any):
        self.model = model

    # ---- pieces of the LM
    def embed(self, input_ids: Tensor) -> Tensor:
        return self.model.get_input_embeddings()(input_ids)

    def decoder(self) -> Any:
        return self.model.model

    def head(self, hidden: Tensor) -> Tensor:
        return self.model.lm_head(hidden)

    # ---- media
    def encode(self, mm: dict[str, Tensor]) -> list[tuple[int, Tensor]]:
        """[(placeholder token id, features [N, H])] for one prompt's media, features in placeholder order."""
        if mm:
            raise ValueError(f"family {self.family!r} takes no media, got {sorted(mm)}")
        return []

    @staticmethod
    def count_media(mm: dict[str, Tensor]) -> int:
        n = 0
        for key in ("image_grid_thw", "video_grid_thw", "input_features"):
            if key in mm:
                n += int(mm[key].shape[0])
        return n

    def positions(self, prompt_ids: Tensor, mm: dict[str, Tensor]) -> Tensor | None:
        """Position ids of the prompt ([L] or [3, L]), None for plain 1-D positions from 0."""
        return None

    def positions_per_prompt(self, mm: dict[str, Tensor]) -> bool:
        """True when the model's own forward cannot derive this prompt's positions in a batch of other prompts (one
        switch per batch, e.g. Qwen-Omni's `use_audio_in_video`): the reference path then passes positions computed
        per prompt."""
        return False

    def hf_logits(self, input_ids: Tensor, attention_mask: Tensor, mm: dict[str, Tensor],
                  position_ids: Tensor | None = None) -> Tensor:
        """Reference path: the model's own forward on the padded batch, media already repeated per row (positions
        from the model itself unless given)."""
        extra = {} if position_ids is None else {"position_ids": position_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **mm, **extra).logits
