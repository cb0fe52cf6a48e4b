"""Helpers shared by the rollout tests (imported by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

VIDEO_FPS, VIDEO_MAX_FRAMES = 4.0, 8
SUITE_TASKS = {"image": "image_mcq", "video": "video_motion", "audio": "audio_pitch", "omni": "omni_av"}


def render(sample, processor):
    from omni_rl.data.render import render_prompt

    return render_prompt(sample, processor, enable_thinking=True, video_fps=VIDEO_FPS,
                         video_max_frames=VIDEO_MAX_FRAMES)


def text_sample(question: str, sid: str = "q"):
    from omni_rl.data.types import Sample

    return Sample(id=sid, source="text", messages=[{"role": "user", "content": question}], verifier="mathruler",
                  answer="0")
