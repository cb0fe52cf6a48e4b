"""Pieces shared by the Qwen families' forwards (`omni`, `vl`): their models expose the same vision encoder API."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def visual_features(m: Any, cfg: Any, mm: dict[str, Tensor]) -> list[tuple[int, Tensor]]:
    """(placeholder token id, features) for images then videos, via the model's own Qwen-VL-style encoders."""
    out = []
    if "pixel_values" in mm:
        feats = m.get_image_features(mm["pixel_values"], mm["image_grid_thw"], return_dict=True).pooler_output
        out.append((cfg.image_token_id, torch.cat(feats, dim=0)))
    if "pixel_values_videos" in mm:
        feats = m.get_video_features(mm["pixel_values_videos"], mm["video_grid_thw"], return_dict=True).pooler_output
        out.append((cfg.video_token_id, torch.cat(feats, dim=0)))
    return out
