"""Run checkpoints: `checkpoints/step_000004/` = the trainer's checkpoint + `driver.json` (step, policy version).
Written to a temp dir and renamed, so a crash mid-save never leaves a checkpoint that looks complete; keep-last-k
pruning.

The trainer's part (`omni_rl.training.worker.TrainerWorker.save`): an HF dir (`model.safetensors`, config, tokenizer /
processor files) + `trainer_state.json` and `trainer_state.safetensors` (optimizer, scheduler, RNG, step, objective
state; `omni_rl.training.state`), or under FSDP2 one `trainer_state.rank<r>.json` / `.safetensors` pair per rank
holding that rank's optimizer shards (resume with the same number of ranks). A checkpoint dir is untrusted input:
nothing in it is unpickled (JSON and safetensors only). Old `trainer_state*.pt` files are refused with what to do,
and so is a dir whose weights are only in pickled `*.bin` / `*.pt` files.

Resume = load the newest complete checkpoint into the trainer, push its weights into the vLLM workers, continue at
step+1. The data order needs no state (MixtureSampler is a pure function of the step) and vLLM sampling seeds are
derived from (run.seed, step), so a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

DRIVER_FILE = "driver.json"


class RunCheckpointer:
    def __init__(self, root: Path, *, keep_last: int):
        if keep_last < 1:
            raise ValueError(f"run.keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = keep_last

    def complete(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.glob("step_*") if (p / DRIVER_FILE).is_file() and p.is_dir())

    def save(self, step: int, trainer: Any, extra: dict[str, Any] | None = None) -> Path:
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".tmp_step_{step:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        trainer.save(tmp)
        (tmp / DRIVER_FILE).write_text(json.dumps({"step": step, "policy_version": step + 1, **(extra or {})}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in self.complete()[: -self.keep_last]:
            shutil.rmtree(old)
        return final

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        done = self.complete()
        if not done:
            return None
        return done[-1], json.loads((done[-1] / DRIVER_FILE).read_text())

    def restore(self, trainer: Any, rollout: Any) -> int:
        """Returns the step to start at (0 when there is nothing to resume)."""
        found = self.latest()
        if found is None:
            return 0
        path, state = found
        if not (isinstance(state, dict) and all(type(state.get(k)) is int for k in ("step", "policy_version"))):
            raise ValueError(f"{path / DRIVER_FILE} must hold integer 'step' and 'policy_version', got {state!r}; "
                             "move the broken checkpoint dir out of the way to resume from the one before it")
        trainer.load(path)
        if rollout is not None:  # a preference run without evaluation has no rollout workers
            rollout.update_weights(trainer.weight_stream(), version=state["policy_version"])
        return state["step"] + 1

    def export_final(self, trainer: Any, out_dir: Path, *, copy_from: Path | None = None) -> Path:
        """The stage's output: an HF checkpoint dir (weights + tokenizer/processor files) the next stage loads."""
        out_dir = Path(out_dir)
        shutil.rmtree(out_dir, ignore_errors=True)
        trainer.export_hf(out_dir)
        if copy_from is not None:
            for f in Path(copy_from).iterdir():
                if f.is_file() and not f.name.endswith(".safetensors") and f.name != "model.safetensors.index.json" \
                        and not (out_dir / f.name).exists():
                    shutil.copy2(f, out_dir / f.name)
        return out_dir
