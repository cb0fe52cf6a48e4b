"""The curriculum runner (`omni-rl run curriculum=NAME`): stages in order on one model, each from the previous
stage's `final/`, with the pass-rate filter before the stages that ask for it. Read top to bottom.

    base model                             (model.path, or the tiny omni model warm-started on the union of every
                                            stage's synthetic tasks, so each stage starts from a policy that reads
                                            its tasks; cached)
    for each stage:
        filter (when the stage asks)       (`omni-rl filter` with the stage's initial policy; kept rows -> data.path)
        run the stage                      (`omni-rl run stage=...` with model.path = the previous final/)
        record it                          (curriculum.json: status, final/, wall time; written after every change)
    summary                                (curriculum.md and curriculum.png: reward and held-out eval per stage)

Resume: re-running the same command skips the finished stages (their `final/` exists), resumes the interrupted one
from its newest checkpoint (`run.resume=true`) and continues an interrupted filter job from its records.

A curriculum file (`configs/curriculum/<name>.yaml`, or a path to a YAML file) lists the stages:

    stages:
      - {stage: mpo}
      - {stage: image_rl, filter: true, overrides: [run.steps=100]}

The command-line overrides go to every stage and filter (e.g. `run.steps=3` for a smoke run), after the stage's own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.config.compose import compose_config
from omni_rl.config.schema import OmniRLConfig
from omni_rl.controller.crash import simulate_crash
from omni_rl.wiring.groups import build_objective
from omni_rl.wiring.policy import build_policy
from omni_rl.wiring.run import Run

STATE_FILE = "curriculum.json"
TEST_HOOKS = ("run.stop_after_steps", "run.stop_after_stage", "run.resume")  # may differ between sessions


def curricula_dir() -> Path:
    """configs/curriculum, shipped inside the package as omni_rl.configs."""
    from importlib.resources import files

    return Path(str(files("omni_rl.configs"))) / "curriculum"


@dataclass
class StageSpec:
    stage: str
    filter: bool = False
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.stage


@dataclass
class Curriculum:
    name: str
    stages: list[StageSpec]
    base_overrides: list[str] = field(default_factory=list)  # for the base model (family, warm start)


def load_curriculum(name_or_path: str) -> Curriculum:
    """A curriculum by name (`configs/curriculum/<name>.yaml`) or by the path of a YAML file."""
    from omegaconf import OmegaConf

    path = Path(name_or_path)
    if not path.suffix:
        path = curricula_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in curricula_dir().glob("*.yaml"))
        raise FileNotFoundError(f"curriculum {name_or_path!r} not found: known curricula are {', '.join(known)}, "
                                "or pass the path of a YAML file")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise ValueError(f"{path}: expected a mapping with a non-empty `stages:` list")
    if set(raw) - {"stages", "base"}:
        raise ValueError(f"{path}: unknown keys {sorted(set(raw) - {'stages', 'base'})}; known: stages, base")
    stages = []
    for i, entry in enumerate(raw["stages"]):
        entry = {"stage": entry} if isinstance(entry, str) else entry
        unknown = set(entry) - {"stage", "filter", "overrides"}
        if not isinstance(entry, dict) or "stage" not in entry or unknown:
            raise ValueError(f"{path}: stage {i}: expected {{stage: NAME, filter: BOOL, overrides: [key=value]}}, "
                             f"got {entry!r}")
        stages.append(StageSpec(stage=str(entry["stage"]), filter=bool(entry.get("filter", False)),
                                overrides=[str(o) for o in entry.get("overrides", [])]))
    return Curriculum(name=path.stem, stages=stages, base_overrides=[str(o) for o in raw.get("base", [])])


class State:
    """curriculum.json: the command that started the curriculum and, per stage, where it stands."""

    def __init__(self, root: Path, curriculum: Curriculum, overrides: list[str]):
        self.path = root / STATE_FILE
        overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+") not in TEST_HOOKS]
        want = {"curriculum": curriculum.name, "stages": [vars(s) for s in curriculum.stages],
                "base": curriculum.base_overrides, "overrides": overrides}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
            had = {k: self.data.get(k) for k in want}
            if had != want:
                diff = "; ".join(f"{k}: {had[k]} -> {want[k]}" for k in want if had[k] != want[k])
                raise ValueError(f"{root} holds a curriculum started with other settings ({diff}): re-run the same "
                                 "command to continue it, or choose another run.output_dir=...")
        else:
            self.data = {**want, "base_model": None, "progress": {}}
        self.save()

    def stage(self, key: str) -> dict[str, Any]:
        return self.data["progress"].setdefault(key, {"status": "pending"})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def stage_key(index: int, spec: StageSpec) -> str:
    return f"{index + 1}_{spec.name}"


def run_curriculum(name_or_path: str, overrides: list[str], *, output_dir: str | None = None) -> Path:
    from rich.console import Console

    from omni_rl.controller import run_stage

    console = Console(highlight=False, soft_wrap=True)
    curriculum = load_curriculum(name_or_path)
    configs = [compose_config([f"stage={s.stage}", *s.overrides, *overrides]) for s in curriculum.stages]  # fail fast
    for stage_cfg in configs:
        build_objective(stage_cfg)  # every stage's algorithm.name is registered and trains its run.kind, before any runs
    root = Path(output_dir or f"outputs/curriculum_{curriculum.name}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    state = State(root, curriculum, overrides)
    console.print(f"[bold]curriculum {curriculum.name}[/]: {' -> '.join(s.name for s in curriculum.stages)}; "
                  f"run dir {root}")

    policy = state.data["base_model"] or base_model(curriculum, configs, overrides, root, console)
    state.data["base_model"] = policy
    state.save()
    for i, (spec, cfg) in enumerate(zip(curriculum.stages, configs)):
        key = stage_key(i, spec)
        rec = state.stage(key)
        stage_dir = root / key
        if rec["status"] == "finished" and (stage_dir / "final" / "config.json").is_file():
            console.print(f"{key}: finished earlier, final {stage_dir / 'final'}")
            policy = str(stage_dir / "final")
            continue
        rec.update(status="running", model_path=policy, started=rec.get("started") or time.time())
        state.save()
        # the previous stage's final/ replaces whatever the first stage started from (a tiny, pretrained or given model)
        stage_overrides = [f"stage={spec.stage}", *spec.overrides, *overrides, "model.pretrained=null",
                           f"model.path={policy}"]
        if spec.filter:
            kept = run_stage_filter(stage_overrides, root / f"{key}_filter", console)
            stage_overrides.append(f"data.path={kept}")
            rec["filter_dir"] = str(kept.parent)
        resume = (stage_dir / "checkpoints").is_dir() and any((stage_dir / "checkpoints").iterdir())
        cfg = compose_config([*stage_overrides, f"run.output_dir={stage_dir}", f"run.resume={str(resume).lower()}"])
        console.print(f"[bold]{key}[/]: from {policy}" + (" (resuming)" if resume else ""))
        t = time.perf_counter()
        run_stage(cfg)
        rec.update(status="finished", final=str(stage_dir / "final"), ended=time.time(),
                   seconds=rec.get("seconds", 0.0) + time.perf_counter() - t,
                   drift=record_drift(policy, stage_dir / "final", cfg, key, console))
        state.save()
        policy = str(stage_dir / "final")
        if cfg.run.stop_after_stage == key:
            simulate_crash(console, f"run.stop_after_stage={key} reached")
    from omni_rl.controller.curriculum_report import write_report

    md, png = write_report(root, state.data)
    console.print(f"curriculum {curriculum.name}: finished; summary {md}, plot {png}, final model {policy}")
    return root


def dry_run_curriculum(name_or_path: str, overrides: list[str]) -> int:
    """`run.dry_run=true` for every stage (its own config, data and placement); the first stage checks the base
    model, the others start from the previous stage's final/. 0 when every stage passed, else 2."""
    from rich.console import Console

    from omni_rl.controller.dry_run import dry_run

    console = Console(highlight=False, soft_wrap=True)
    curriculum = load_curriculum(name_or_path)
    codes = []
    for i, spec in enumerate(curriculum.stages):
        cfg = compose_config([f"stage={spec.stage}", *spec.overrides, *overrides])
        prev = stage_key(i - 1, curriculum.stages[i - 1]) if i else None
        codes.append(dry_run(cfg, console, model_from=f"{prev}/final (the previous stage's checkpoint)"
                             if prev else None))
    console.print(f"curriculum {curriculum.name}: {codes.count(0)} of {len(codes)} stages passed the dry run")
    return max(codes)


def base_model(curriculum: Curriculum, configs: list[OmniRLConfig], overrides: list[str], root: Path,
               console: Any) -> str:
    """The first stage's model: `model.path` or `model.pretrained` when given, else the tiny model of the first
    stage's family, warm-started on the union of every stage's synthetic tasks (cached)."""
    first = configs[0]
    if first.model.path is not None:
        return str(Path(first.model.path).resolve())
    if first.model.pretrained is not None:  # converted into the cache once, no warm start
        return str(build_policy(first, Run(cfg=first, dir=root, console=console)).path)
    tasks = sorted({t for c in configs for t in c.data.synthetic_tasks})
    cfg = compose_config([f"stage={curriculum.stages[0].stage}", *curriculum.base_overrides, *overrides,
                          f"data.synthetic_tasks=[{','.join(tasks)}]", f"run.output_dir={root / 'base'}"])
    console.print(f"base model: tiny {cfg.model.family} model warm-started on {len(tasks)} tasks ({', '.join(tasks)})")
    return str(build_policy(cfg, Run(cfg=cfg, dir=root, console=console)).path)


def record_drift(before: str, after: Path, cfg: OmniRLConfig, key: str, console: Any) -> dict[str, Any]:
    """Which parameter groups the stage moved (`checkpoint_drift`), with the groups its config froze; a frozen group
    that moved is reported loudly (it would be a bug in the trainer)."""
    from omni_rl.models.families import resolve_family
    from omni_rl.models.parts import checkpoint_drift

    drift = checkpoint_drift(before, after, resolve_family(after))
    frozen = sorted(g for g, on in vars(cfg.trainer.freeze).items() if on)
    moved = sorted(g for g, d in drift.items() if d["changed"])
    broken = sorted(set(frozen) & set(moved))
    console.print(f"{key}: parameter groups changed: {', '.join(moved) or 'none'}; frozen: {', '.join(frozen) or 'none'}"
                  + (f" [bold red]-- FROZEN GROUPS MOVED: {', '.join(broken)}[/]" if broken else ""))
    return {"groups": drift, "frozen": frozen, "moved": moved}


def run_stage_filter(stage_overrides: list[str], out: Path, console: Any) -> Path:
    """`omni-rl filter` with the stage's settings and initial policy; returns its kept.jsonl."""
    from omni_rl.jobs.filter import run_filter

    cfg = compose_config([*stage_overrides, f"run.output_dir={out}"])
    if run_filter(cfg, console=console) != 0:
        raise KeyboardInterrupt  # Ctrl-C during the filter: everything recorded stays; re-run to continue
    import ray

    if ray.is_initialized():
        ray.shutdown()  # the stage starts its own actors with its own settings
    return out / "kept.jsonl"
