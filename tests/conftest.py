"""Test order for `scripts/test.sh`, which runs whole test files on 2 pytest-xdist workers (`--dist loadfile
--no-loadscope-reorder`: a file's module fixtures, such as an end-to-end run, are built once, on one worker).

The longest files go first, so the two workers finish together instead of one starting a 10-minute end-to-end run
at the end; files that reuse a cached warm start come after the file that builds it (a second builder would wait on
its lock with a core idle). Seconds are from one fresh-clone run on 2 workers (`bash scripts/test.sh`, which prints
the slowest durations); the order only changes the wall time, never what a test checks."""

from __future__ import annotations

SLOWEST_FIRST = {  # file -> measured seconds (setup + calls), in the order the workers take them
    "tests/controller/test_image_rl_e2e.py": 600,  # builds the omni warm start that the next two marked files reuse
    "tests/controller/test_curriculum_e2e.py": 380,
    "tests/controller/test_text_rl_e2e.py": 250,  # builds the text warm start that test_resume.py reuses
    "tests/controller/test_resume.py": 210,
    "tests/bench/test_trl_baseline.py": 220,
    "tests/controller/test_mpo_e2e.py": 240,  # omni warm start: after image_rl's has had time to finish
    "tests/jobs/test_filter_e2e.py": 280,  # omni warm start
    "tests/rollout/test_rollout_group.py": 110,
    "tests/controller/test_omni_rl_e2e.py": 60,
    "tests/bench/test_trl_mpo.py": 110,
    "tests/rollout/test_multimodal.py": 100,
    "tests/controller/test_dry_run.py": 90,  # a two-node Ray cluster with logical GPUs
    "tests/models/test_pretrained.py": 60,  # converts SmolLM2's GGUF
    "tests/training/test_dp_exact.py": 60,
    "tests/models/test_vllm_parity.py": 40,
    "tests/training/test_group.py": 40,
}


def pytest_collection_modifyitems(config, items):
    order = {path: i for i, path in enumerate(SLOWEST_FIRST)}

    def rank(item) -> int:
        return order.get(item.nodeid.split("::", 1)[0], len(order))

    items.sort(key=rank)  # stable: the order within a file, and of the unlisted files, stays
