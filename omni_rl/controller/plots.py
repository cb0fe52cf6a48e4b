"""The plots of a finished stage, written into its run dir."""

from __future__ import annotations

import json

from omni_rl.logging.plots import plot_run
from omni_rl.wiring.run import Run


def write_plots(run: Run) -> None:
    paths = plot_run(run.dir)
    run.console.print(f"plots: {', '.join(str(p.name) for p in paths)} in {run.dir / 'plots'}")
    (run.dir / "plots" / "index.json").write_text(json.dumps([p.name for p in paths]))
