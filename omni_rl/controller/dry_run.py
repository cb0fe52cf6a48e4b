"""`run.dry_run=true`: check a composed run without loading weights or starting a worker, and say what would run.

Checks, each reported as a row (ok / problem + what to do):
* **model** -- `model.path`: its config.json names a registered family (else the one-line UnknownModelError), the
  tokenizer files and weight files are there, `rollout.tensor_parallel_size` divides the LM's attention heads, and
  `rollout.max_model_len` fits its position embeddings. Without a path: the tiny offline model of `model.family`.
* **data** -- `data.path` / `data.eval_path`: every row is loaded and validated (media files probed), counts and
  reject reasons shown; no usable row is a problem. Without a path: the synthetic suite's tasks.
* **placement** -- the Ray bundles the run asks for (rollout workers: CPU + `rollout.num_gpus_per_worker`, by default
  the tensor-parallel size when the cluster has GPUs; trainer ranks: CPU + `trainer.num_gpus_per_worker`) are packed
  onto the cluster's nodes: `ray_address` (an existing cluster: its live nodes' resources, read through Ray), else
  this machine as `omni-rl run` would start it. A worker's GPUs must sit on one node.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni_rl.config.schema import OmniRLConfig
from omni_rl.wiring.groups import build_objective
from omni_rl.wiring.policy import tiny_needs_gpu


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def dry_run(cfg: OmniRLConfig, console: Any, *, model_from: str | None = None) -> int:
    """Run the checks, print them; 0 when every check passed, 2 otherwise. `model_from` replaces the model checks
    (a curriculum stage starts from the previous stage's final/, which does not exist yet)."""
    from rich.table import Table

    models = [Check("model", True, model_from)] if model_from else model_checks(cfg)
    checks = [*models, *objective_problems(cfg), *plugin_checks(cfg), *data_checks(cfg), *placement_checks(cfg)]
    table = Table(title=f"dry run of {cfg.run.name}: nothing was loaded or started", show_lines=False)
    for col in ("check", "", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]problem[/]", c.detail)
    console.print(table)
    bad = [c for c in checks if not c.ok]
    console.print(f"{len(checks) - len(bad)} of {len(checks)} checks passed" + (
        "" if not bad else "; fix: " + "; ".join(f"{c.name}: {c.detail}" for c in bad)))
    return 2 if bad else 0


# ------------------------------------------------------------------------------------------------------- model
def lm_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config.json (nested as thinker_config.text_config, text_config, llm_config,
    language_config, or the top level): the first dict that has `num_attention_heads`."""
    stack = [config]
    for key in ("thinker_config", "text_config", "llm_config", "language_config"):
        nested = [d[key] for d in stack if isinstance(d.get(key), dict)]
        stack = nested + stack
    for d in stack:
        if "num_attention_heads" in d:
            return d
    return {}


def model_checks(cfg: OmniRLConfig) -> list[Check]:
    from omni_rl.models.families import UnknownModelError, family_of_config, tiny_families

    if cfg.model.pretrained is not None:
        from omni_rl.models.pretrained import check_choice

        try:
            check_choice(cfg.model.pretrained, cfg.model.path)
        except ValueError as e:
            return [Check("model", False, str(e))]
        return [Check("model", True, f"pretrained {cfg.model.pretrained} (converted into the cache at the first run)")]
    if cfg.model.path is None:
        if cfg.model.family not in tiny_families():
            return [Check("model", False, f"model.family={cfg.model.family!r} has no tiny offline model; choose one of "
                                          f"{', '.join(tiny_families())} or give model.path=DIR")]
        from omni_rl.models.families import get_family

        try:
            get_family(cfg.model.family).tiny_spec_of(cfg.model.tiny_variant)
        except ValueError as e:
            return [Check("model", False, str(e))]
        gpu_reason = tiny_needs_gpu(cfg)
        if gpu_reason:
            return [Check("model", False, gpu_reason)]
        variant = f" (variant {cfg.model.tiny_variant})" if cfg.model.tiny_variant else ""
        return [Check("model", True, f"tiny offline {cfg.model.family} model{variant} (built and cached at the first "
                                     "run)" + (", warm-started on the synthetic suite" if cfg.model.warm_start else ""))]
    path = Path(cfg.model.path).expanduser()
    config_file = path / "config.json"
    if not config_file.is_file():
        return [Check("model", False, f"model.path={path} is not an HF checkpoint dir (no config.json)")]
    config = json.loads(config_file.read_text())
    try:
        family = family_of_config(config, str(config_file))
    except UnknownModelError as e:
        return [Check("model", False, str(e))]
    arch = (config.get("architectures") or ["?"])[0]
    checks = [Check("model", True, f"{path}: {arch} -> family {family.name} ({family.summary})")]
    weights = sorted(p.name for p in path.glob("*.safetensors")) + sorted(p.name for p in path.glob("*.bin"))
    checks.append(Check("model weights", bool(weights),
                        f"{len(weights)} weight file(s)" if weights else f"no *.safetensors / *.bin in {path}"))
    has_tok = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))
    checks.append(Check("model tokenizer", has_tok, "tokenizer files present" if has_tok else
                        f"no tokenizer.json / tokenizer_config.json in {path}: save the tokenizer / processor there"))
    lm = lm_config(config)
    tp = cfg.rollout.tensor_parallel_size
    heads, kv = lm.get("num_attention_heads"), lm.get("num_key_value_heads") or lm.get("num_attention_heads")
    if heads:
        ok = heads % tp == 0 and (kv % tp == 0 or tp % kv == 0)
        checks.append(Check("tensor parallel", ok, f"rollout.tensor_parallel_size={tp}, {heads} attention heads / "
                            f"{kv} KV heads" + ("" if ok else ": vLLM needs the heads divisible by the TP size")))
    max_pos = lm.get("max_position_embeddings")
    if max_pos:
        ok = cfg.rollout.max_model_len <= max_pos
        checks.append(Check("context", ok, f"rollout.max_model_len={cfg.rollout.max_model_len} vs "
                            f"max_position_embeddings={max_pos}" + ("" if ok else ": lower rollout.max_model_len")))
    return checks


# -------------------------------------------------------------------------------------------------------- data
def objective_problems(cfg: OmniRLConfig) -> list[Check]:
    """A row only when `algorithm.name` names no registered objective or one that does not train `run.kind`."""
    try:
        build_objective(cfg)
    except ValueError as e:
        return [Check("algorithm.name", False, str(e))]
    return []


def plugin_checks(cfg: OmniRLConfig) -> list[Check]:
    """Import the verifier plugin modules of `verify.plugins` (a run imports them first thing too), so that the data
    check knows their names."""
    if not cfg.verify.plugins:
        return []
    from omni_rl.verifiers import PluginError, load_plugins

    try:
        loaded = load_plugins(cfg.verify.plugins)
    except PluginError as e:
        return [Check("verify.plugins", False, str(e))]
    return [Check("verify.plugins", True, "; ".join(f"{m}: {', '.join(names)}" for m, names in loaded.items()))]


def data_checks(cfg: OmniRLConfig) -> list[Check]:
    checks = []
    for key, given in (("data.path", cfg.data.path), ("data.eval_path", cfg.data.eval_path)):
        if key == "data.eval_path" and cfg.run.eval_every == 0:
            continue
        if given is None:
            tasks = list(cfg.data.eval_tasks or cfg.data.synthetic_tasks) if key == "data.eval_path" else list(
                cfg.data.synthetic_tasks)
            checks.append(Check(key, True, "synthetic suite (generated offline at the first run): "
                                + (", ".join(tasks) if tasks else "every task")))
            continue
        checks.append(_data_file_check(key, Path(given).expanduser(), cfg))
    return checks


def _data_file_check(key: str, path: Path, cfg: OmniRLConfig) -> Check:
    if not path.exists():
        return Check(key, False, f"{path} does not exist")
    from omni_rl.data.loading import load_samples
    from omni_rl.data.pairs import load_pairs
    from omni_rl.verifiers import verifier_exists

    pairs = cfg.run.kind == "preference" and key == "data.path"
    try:
        result = (load_pairs if pairs else load_samples)(path, known_verifiers=verifier_exists)
    except (OSError, ValueError) as e:  # a path the loader cannot read at all
        return Check(key, False, f"{path}: {e}")
    ok = bool(result.pairs if pairs else result.samples)
    counts = {k: v for k, v in result.counts.items() if v}
    detail = f"{path}{' (preference pairs)' if pairs else ''}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    if result.rejects:
        detail += f"; first reject: {result.rejects[0]['reason']}"
    return Check(key, ok, detail if ok else detail + " -- no usable row")


# --------------------------------------------------------------------------------------------------- placement
def bundles(cfg: OmniRLConfig, cluster_has_gpus: bool) -> list[tuple[str, dict[str, float]]]:
    """(label, resources) of every Ray actor the run starts, as the worker groups ask for them."""
    from omni_rl.distributed.ray_utils import worker_bundle

    r, t = cfg.rollout, cfg.trainer
    rollout_gpus = r.num_gpus_per_worker if r.num_gpus_per_worker is not None else (
        float(r.tensor_parallel_size) if cluster_has_gpus else 0.0)
    trainer_gpus = t.num_gpus_per_worker if t.num_gpus_per_worker is not None else (1.0 if cluster_has_gpus else 0.0)
    out = [(f"rollout {i}", worker_bundle(1.0, rollout_gpus)) for i in range(r.num_workers)]
    if cfg.run.kind == "preference" and not cfg.run.eval_every:
        out = []  # MPO without evaluation starts no rollout worker
    return out + [(f"trainer {i}", worker_bundle(1.0, trainer_gpus)) for i in range(t.num_workers)]


def cluster_nodes(cfg: OmniRLConfig) -> tuple[str, list[dict[str, float]]]:
    """(where, [per-node resources]) of the cluster the run would use."""
    if cfg.ray_address:
        import ray

        ray.init(address=cfg.ray_address, logging_level="ERROR", log_to_driver=False)
        try:
            nodes = [{k: float(v) for k, v in n["Resources"].items() if k in ("CPU", "GPU")}
                     for n in ray.nodes() if n.get("Alive")]
        finally:
            ray.shutdown()
        return f"Ray cluster {cfg.ray_address}", nodes
    gpus = 0
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:
        pass
    cpus = cfg.num_cpus or max(4, os.cpu_count() or 1)  # as omni_rl.distributed.ray_utils.init_ray starts it
    return "this machine (local Ray cluster)", [{"CPU": float(cpus), "GPU": float(gpus)}]


def pack(wanted: list[tuple[str, dict[str, float]]], nodes: list[dict[str, float]]) -> tuple[list[int], list[str]]:
    """First-fit of the bundles (largest GPU ask first) onto the nodes: (node index per bundle, -1 when it does not
    fit; the bundles that do not fit)."""
    free = [dict(n) for n in nodes]
    where = [-1] * len(wanted)
    order = sorted(range(len(wanted)), key=lambda i: -wanted[i][1].get("GPU", 0.0))
    for i in order:
        ask = wanted[i][1]
        for n, res in enumerate(free):
            if all(res.get(k, 0.0) + 1e-9 >= v for k, v in ask.items()):
                for k, v in ask.items():
                    res[k] = res.get(k, 0.0) - v
                where[i] = n
                break
    return where, [wanted[i][0] for i in range(len(wanted)) if where[i] < 0]


def placement_checks(cfg: OmniRLConfig) -> list[Check]:
    where, nodes = cluster_nodes(cfg)
    total = {k: sum(n.get(k, 0.0) for n in nodes) for k in ("CPU", "GPU")}
    wanted = bundles(cfg, total["GPU"] > 0)
    need = {k: sum(b.get(k, 0.0) for _, b in wanted) for k in ("CPU", "GPU")}
    placed, missing = pack(wanted, nodes)
    per_node = {}
    for (label, _), n in zip(wanted, placed):
        if n >= 0:
            per_node.setdefault(n, []).append(label)
    layout = "; ".join(f"node {n}: {', '.join(labels)}" for n, labels in sorted(per_node.items()))
    detail = (f"{where}: {len(nodes)} node(s), {total['CPU']:g} CPU, {total['GPU']:g} GPU; the run asks "
              f"{need['CPU']:g} CPU, {need['GPU']:g} GPU ({cfg.rollout.num_workers} rollout worker(s) x TP "
              f"{cfg.rollout.tensor_parallel_size}, {cfg.trainer.num_workers} trainer rank(s))")
    if missing:
        return [Check("placement", False, f"{detail}; does not fit: {', '.join(missing)} (a worker's GPUs must be on "
                                          "one node): fewer workers, a smaller TP size, or a bigger cluster")]
    return [Check("placement", True, f"{detail}; {layout}")]
