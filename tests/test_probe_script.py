"""scripts/probe_supervised.py runs end to end (the probe behind docs/training.md, "Learning")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_probe_prints_per_task_probabilities():
    p = subprocess.run([sys.executable, "scripts/probe_supervised.py", "--tasks", "image_count", "--steps", "2",
                        "--per-task", "4"], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [line for line in p.stdout.splitlines() if line.startswith("step")]
    assert [int(line.split()[1]) for line in lines] == [0, 1, 2]  # report at 0, every steps//5 (=1), and the end
    gold, confused, chance = map(float, re.search(
        r"image_count p\(gold\) ([\d.]+) p\(confused\) ([\d.]+) \(chance ([\d.]+)\)", lines[0]).groups())
    assert chance == 0.25
    # the random-weight model has no preference among "1".."4": both within 0.02 of chance before training
    assert abs(gold - 0.25) < 0.02 and abs(confused - 0.25) < 0.02, lines[0]
