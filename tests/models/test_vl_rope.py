"""The Qwen2.5-VL M-RoPE fix (`omni_rl.models.families.vl.fix_qwen2_5_vl_rope`, applied on load): text after a video
continues at max(positions) + 1 (vLLM / original Qwen2.5-VL)."""

from __future__ import annotations

import torch


def test_vl_rope_index_text_after_video_hand_computed(tiny_dir):
    from omni_rl.models import get_family, load_policy

    model, _ = load_policy(tiny_dir("vl"), get_family("vl"))
    cfg = model.config
    assert cfg.vision_config.tokens_per_second == 4 and cfg.vision_config.spatial_merge_size == 2
    video = cfg.video_token_id
    # 2 text tokens, a video of grid (t=4, h=4, w=4) -> 4 x 2 x 2 = 16 tokens, 2 text tokens
    ids = torch.tensor([[11, 12] + [video] * 16 + [13, 14]])
    types = torch.tensor([[0, 0] + [2] * 16 + [0, 0]])
    pos, delta = model.model.get_rope_index(ids, mm_token_type_ids=types, video_grid_thw=torch.tensor([[4, 4, 4]]),
                                            second_per_grid_ts=torch.tensor([0.5]))
    # temporal interval = tokens_per_second * seconds per grid = 4 * 0.5 = 2; the video starts at position 2
    t = [2 + 2 * k for k in range(4) for _ in range(4)]  # 2, 4, 6, 8 (each for 2 x 2 tokens)
    h = [2, 2, 3, 3] * 4
    w = [2, 3, 2, 3] * 4
    # text after the video starts at max(8, 3, 3) + 1 = 9 (transformers 5.19 alone would restart at 2 + 4 / 2 = 4)
    assert pos[0, 0].tolist() == [0, 1] + t + [9, 10]
    assert pos[1, 0].tolist() == [0, 1] + h + [9, 10]
    assert pos[2, 0].tolist() == [0, 1] + w + [9, 10]
    assert delta.tolist() == [[11 - 20]]


def test_vl_rope_index_images_unchanged_and_padding(tiny_dir):
    """Images (t = 1) give the same positions as transformers' own rule; left padding is skipped."""
    from omni_rl.models import get_family, load_policy

    model, _ = load_policy(tiny_dir("vl"), get_family("vl"))
    img = model.config.image_token_id
    ids = torch.tensor([[0, 0, 11] + [img] * 4 + [13]])
    types = torch.tensor([[0, 0, 0] + [1] * 4 + [0]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    pos, delta = model.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=torch.tensor([[1, 4, 4]]),
                                            attention_mask=mask)
    assert pos[:, 0, 2:].tolist() == [[0, 1, 1, 1, 1, 3], [0, 1, 1, 2, 2, 3], [0, 1, 2, 1, 2, 3]]
    assert pos[:, 0, :2].tolist() == [[0, 0]] * 3
    assert delta.tolist() == [[4 - 6]]
