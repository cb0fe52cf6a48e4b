#!/usr/bin/env python
"""MPO learning figures: `scripts/bench_train.py --stage mpo --window 10 --out outputs/bench_mpo` (every option of
bench_train.py applies). Per run: the preference-accuracy curve (blocks of steps), its start / end (first / last 10
steps), the reward margin, the held-out greedy verifier reward before MPO (step 0) and after the last update, and the
wall time; with --seeds K, min / median / max over K runs.

    .venv/bin/python scripts/bench_mpo.py                                   # one default `omni-rl run stage=mpo`
    .venv/bin/python scripts/bench_mpo.py --seeds 5 --seed-keys run.seed    # same pairs, 5 orders / initialisations
    .venv/bin/python scripts/bench_mpo.py --seeds 5                         # 5 models, warm starts and pair sets
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--stage", "mpo", "--window", "10", "--out", "outputs/bench_mpo", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("bench_train.py")), run_name="__main__")
