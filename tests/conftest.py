"""Test order for `scripts/test.sh`, which runs whole test files on 2 pytest-xdist workers (`--dist loadfile
--no-loadscope-reorder`: a file's module fixtures, such as an end-to-end run, are built once, on one worker).

The longest files go first, so the two workers finish together instead of one starting a 9-minute end-to-end run
at the end. Seconds are one fresh-clone run on 2 cores (`bash scripts/test.sh --durations=70`); the order only
changes the wall time, never what a test checks."""

from __future__ import annotations

SLOWEST_FIRST = {  # file -> measured seconds (setup + calls)
    "tests/controller/test_image_rl_e2e.py": 520,
    "tests/controller/test_mpo_e2e.py": 240,
    "tests/jobs/test_filter_e2e.py": 225,
    "tests/controller/test_curriculum_e2e.py": 220,
    "tests/bench/test_trl_baseline.py": 170,
    "tests/controller/test_resume.py": 160,
    "tests/controller/test_text_rl_e2e.py": 155,
    "tests/rollout/test_rollout_group.py": 110,
    "tests/bench/test_trl_mpo.py": 90,
    "tests/rollout/test_multimodal.py": 75,
    "tests/training/test_dp_exact.py": 40,
    "tests/models/test_vllm_parity.py": 40,
    "tests/training/test_group.py": 40,
}


def pytest_collection_modifyitems(config, items):
    def rank(item) -> float:
        path = item.nodeid.split("::", 1)[0]
        return -SLOWEST_FIRST.get(path, 0)

    items.sort(key=rank)  # stable: the order within a file, and of the unlisted files, stays
