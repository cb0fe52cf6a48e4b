"""Helpers shared by the rollout tests (imported by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

VIDEO_FPS, VIDEO_MAX_FRAMES = 4.0, 8
# "omni" (a video and a separate audio part) is built from the video and audio rows by the suite_samples fixture;
# "omni_track" is a video with its own soundtrack (use_audio_in_video).
SUITE_TASKS = {"image": "image_mcq", "video": "video_motion", "audio": "audio_pitch", "omni_track": "omni_av"}


def render(sample, processor):
    from omni_rl.data.render import render_prompt
    from omni_rl.models.families.omni import AUDIO_IN_VIDEO  # only a video with its own soundtrack (omni) reads it

    return render_prompt(sample, processor, enable_thinking=True, video_fps=VIDEO_FPS,
                         video_max_frames=VIDEO_MAX_FRAMES, audio_in_video_key=AUDIO_IN_VIDEO)


def text_sample(question: str, sid: str = "q"):
    from omni_rl.data.types import Sample

    return Sample(id=sid, source="text", messages=[{"role": "user", "content": question}], verifier="mathruler",
                  answer="0")
