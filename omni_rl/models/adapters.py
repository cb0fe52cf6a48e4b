"""Small, documented fixes applied to HF models when we load them, so that the trainer scores exactly what vLLM
generated from.

`fix_qwen2_5_vl_rope(model)`: transformers 5.19's Qwen2.5-VL `get_rope_index` starts the text after a video at
`start + max(h, w) / merge` (the spatial extent only), while the original Qwen2.5-VL rule -- and vLLM 0.32 --
continue at `max(position ids so far) + 1`, which includes the video's scaled temporal extent
`(t - 1) * tokens_per_second * seconds_per_grid`. Images (t = 1) agree either way; for a video longer than it is
wide the token positions after it differ and HF's logprobs drift from vLLM's (the figure: docs/benchmarks.md,
figures behind code comments). The replacement below keeps HF's grouping by `mm_token_type_ids` and its vision position
ids, and only changes where the next text segment starts.
"""

from __future__ import annotations

import itertools
import types
from typing import Any


def _vl_rope_index(self: Any, input_ids: Any, mm_token_type_ids: Any, image_grid_thw: Any = None,
                   video_grid_thw: Any = None, second_per_grid_ts: Any = None, attention_mask: Any = None,
                   **kwargs: Any) -> tuple[Any, Any]:
    """`(position_ids [3, B, T], rope_deltas [B, 1])` with vLLM's rule: each segment starts at max(previous) + 1."""
    import torch

    merge = self.config.vision_config.spatial_merge_size
    tokens_per_second = self.config.vision_config.tokens_per_second
    grids = {1: iter(image_grid_thw if image_grid_thw is not None else []),
             2: iter(video_grid_thw if video_grid_thw is not None else [])}
    seconds = iter(second_per_grid_ts if second_per_grid_ts is not None else [])
    batch, length = input_ids.shape
    position_ids = torch.zeros(3, batch, length, dtype=input_ids.dtype, device=input_ids.device)
    deltas = []
    for b in range(batch):
        keep = (attention_mask[b].bool() if attention_mask is not None
                else torch.ones(length, dtype=torch.bool, device=input_ids.device))
        kinds = mm_token_type_ids[b][keep].tolist()
        pieces, start = [], 0
        for kind, run in itertools.groupby(kinds):
            n = len(list(run))
            if kind == 0:
                pieces.append(torch.arange(n, device=input_ids.device).view(1, -1).expand(3, -1) + start)
                start += n
                continue
            while n > 0:  # consecutive items of one modality form a single run
                grid = next(grids[kind])
                interval = tokens_per_second * next(seconds) if kind == 2 else 1
                piece = self.get_vision_position_ids(start, grid, 1, merge, interval, device=input_ids.device)
                pieces.append(piece)
                start = int(piece.max()) + 1
                n -= piece.shape[1]
        positions = torch.cat(pieces, dim=1)
        position_ids[:, b, keep] = positions.to(position_ids.dtype)
        deltas.append(int(positions.max()) + 1 - int(keep.sum()))
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def fix_qwen2_5_vl_rope(model: Any) -> Any:
    """Bind `_vl_rope_index` as `get_rope_index` of the Qwen2_5_VLModel inside `model` (in place; returns model)."""
    inner = model.model if hasattr(model, "model") else model
    inner.get_rope_index = types.MethodType(_vl_rope_index, inner)
    return model
