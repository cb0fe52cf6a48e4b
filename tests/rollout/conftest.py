"""Shared fixtures for the rollout tests: a local Ray cluster per module, tiny models (cached under
$OMNI_RL_CACHE/models), and one rendered prompt per modality from the synthetic suite."""

from __future__ import annotations

import dataclasses

import pytest

from rollout_helpers import SUITE_TASKS


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from omni_rl.distributed.ray_utils import init_ray

    init_ray(num_cpus=4)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def suite_samples(tmp_path_factory):
    """modality -> Sample: a 56x56 image, an 8-frame 56x56 video, a 1.5-3 s tone, video + audio, a video with its own
    soundtrack."""
    from omni_rl.data.loading import load_samples
    from omni_rl.data.synthetic import generate_suite

    path = generate_suite(tmp_path_factory.mktemp("suite") / "s", tasks=list(SUITE_TASKS.values()), n_per_task=1)
    by_source = {s.source: s for s in load_samples(path, known_verifiers=lambda name: True).samples}
    out = {kind: by_source[task] for kind, task in SUITE_TASKS.items()}
    video, audio = out["video"].messages[0]["content"][0], out["audio"].messages[0]["content"][0]
    out["omni"] = dataclasses.replace(out["video"], id="omni", modality="omni", messages=[
        {"role": "user", "content": [video, audio, {"type": "text", "text": "What do you see and hear?"}]}])
    return out
