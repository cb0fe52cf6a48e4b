"""The preference stage loop (mpo): read this file top to bottom.

Before step 0:
    pairs                                  (data.path = a pairs.jsonl, or pairs built once from the synthetic suite
                                            by `omni-rl build-preferences` with the initial policy, cached)
    reference log-probs                    (every pair's chosen and rejected, summed, under the frozen initial
                                            weights: ONE scoring pass, cached in the run dir, reused on resume)
One step:
    take the step's pairs                  (a pure function of (seed, step): epoch-wise shuffles, exact resume)
    build the batch                        (each prompt rendered once; chosen and rejected share its media encoding)
    train                                  (data-parallel trainer actors, MPO objective, one global normaliser)
    log + checkpoint                       (metrics.jsonl, wandb, keep-last-k checkpoints; delta in trainer state)
    every run.eval_every steps             (weights pushed to the vLLM workers, greedy pass over the held-out suite,
                                            scored by the same verifiers as RL: eval/* metrics)
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_rl.config.schema import OmniRLConfig
from omni_rl.controller.checkpoint import RunCheckpointer
from omni_rl.controller.crash import simulate_crash
from omni_rl.controller.evaluate import evaluate
from omni_rl.controller.plots import write_plots
from omni_rl.data.pairs import load_pairs
from omni_rl.interrupts import sigint_flag
from omni_rl.jobs.preferences import run_build_preferences
from omni_rl.locks import waiting_lock
from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
from omni_rl.wiring.cache import cache_dir
from omni_rl.wiring.data import build_data, render_sample
from omni_rl.wiring.groups import build_workers, init_ray, record_placement
from omni_rl.wiring.policy import Policy, build_policy
from omni_rl.wiring.run import build_run, metric_text
from omni_rl.wiring.verifiers import build_rollout_scorer

if TYPE_CHECKING:
    from omni_rl.training.group import TrainerGroup

REFERENCE_FILE = "reference_logp.json"


def train_preference(cfg: OmniRLConfig) -> Path:
    run = build_run(cfg)
    policy = build_policy(cfg, run)  # the initial policy (tiny model built / warm-started when needed)
    pairs = build_pairs(cfg, run, policy)
    eval_data = build_data(cfg, run, policy, split="eval") if cfg.run.eval_every > 0 else None
    init_ray(cfg)
    trainer, rollout = build_workers(cfg, policy, rollout=eval_data is not None)  # started side by side
    record_placement(run, trainer, rollout)
    verifier = build_rollout_scorer(cfg) if eval_data is not None else None
    ckpt = RunCheckpointer(run.dir / "checkpoints", keep_last=cfg.run.keep_last)
    start_step = ckpt.restore(trainer, rollout) if cfg.run.resume else 0
    pairs.reference = reference_logps(run, pairs, trainer, resumed=start_step > 0)
    run.logger.open(resume_step=start_step - 1 if cfg.run.resume else None)
    run.console.print(f"[bold]{cfg.run.name}[/]: steps {start_step}..{cfg.run.steps - 1}, "
                      f"{cfg.run.prompts_per_step} pairs per step from {len(pairs.items)}, run dir {run.dir}")
    try:
        with sigint_flag() as ctrl_c, run.progress(total=cfg.run.steps, start=start_step) as progress:
            for step in range(start_step, cfg.run.steps):
                evals = {}
                if eval_data is not None and step % cfg.run.eval_every == 0:
                    if step > 0:  # the workers hold the initial weights until the first update is pushed
                        rollout.update_weights(trainer.weight_stream(), version=step)
                    evals = evaluate(eval_data, rollout, verifier, step=step)
                metrics = {**preference_step(cfg, step, pairs, trainer), **evals}
                run.logger.log(step, metrics)
                run.console.print(summary_line(step, metrics), soft_wrap=True)
                progress.advance()
                if (step + 1) % cfg.run.checkpoint_every == 0 or step + 1 == cfg.run.steps:
                    ckpt.save(step, trainer)
                if cfg.run.stop_after_steps is not None and step + 1 >= cfg.run.stop_after_steps:
                    simulate_crash(run.console)
                ctrl_c.check()  # a Ctrl-C swallowed by a finalizer still stops the run after this step
        if eval_data is not None:  # the held-out reward after the last update
            rollout.update_weights(trainer.weight_stream(), version=cfg.run.steps)
            final = evaluate(eval_data, rollout, verifier, step=cfg.run.steps)
            run.logger.log(cfg.run.steps, final)
            run.console.print(f"held-out greedy reward after {cfg.run.steps} steps: {final['eval/mean']:.3f}")
        ckpt.export_final(trainer, run.dir / "final", copy_from=policy.path)
    finally:
        run.logger.close()
        trainer.shutdown()
        if rollout is not None:
            rollout.shutdown()
        if verifier is not None:
            verifier.close()
    if cfg.logging.plot:
        write_plots(run)
    return run.dir


def preference_step(cfg: OmniRLConfig, step: int, pairs: "PairData", trainer: TrainerGroup) -> dict[str, float]:
    t = time.perf_counter()
    indices = pairs.step_indices(step, cfg.run.prompts_per_step, seed=cfg.run.seed)
    batch = pairs.batch(indices)  # [chosen, rejected] per pair; each prompt (and its media) once
    t_build = time.perf_counter() - t
    metrics = trainer.train(batch, num_minibatches=cfg.trainer.optimizer_steps_per_batch)
    return {**metrics, "time/build": t_build, "time/step": time.perf_counter() - t}


def summary_line(step: int, m: dict[str, Any]) -> str:
    def g(key: str, fmt: str = ".3f") -> str:
        return metric_text(m, key, fmt)

    return (f"step {step:>3} | loss {g('train/loss', '.4f')} | accuracy {g('mpo/accuracy', '.2f')} margin "
            f"{g('mpo/reward_margin')} | dpo {g('mpo/pref_loss')} bco {g('mpo/quality_loss')} sft "
            f"{g('mpo/sft_loss')} delta {g('mpo/delta', '.4f')} | train {g('time/step', '.1f')}s"
            + (f" | eval {g('eval/mean')}" if "eval/mean" in m else ""))


# ------------------------------------------------------------------------------------------------------ pairs
class PairData:
    """The stage's pairs, each prompt rendered once (LRU), and their reference log-probs."""

    def __init__(self, items: list[Any], policy: Policy, cfg: OmniRLConfig):
        self.items = items
        self.policy = policy
        self.cfg = cfg
        self.reference: dict[str, tuple[float, float]] = {}
        tok = getattr(policy.processor, "tokenizer", policy.processor)
        self._tok = tok
        self._eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        self._prompts: OrderedDict[str, Any] = OrderedDict()

    def step_indices(self, step: int, size: int, *, seed: int) -> list[int]:
        """Pairs of `step`: consecutive slices of per-epoch shuffles (epoch e shuffled with seed (seed, e))."""
        n = len(self.items)
        out = []
        for k in range(step * size, (step + 1) * size):
            epoch, pos = divmod(k, n)
            out.append(_epoch_order(n, seed, epoch)[pos])
        return out

    def response_ids(self, text: str) -> list[int]:
        """The response's token ids as the policy generated them: the text, then the end-of-turn token."""
        return list(self._tok(text, add_special_tokens=False)["input_ids"]) + self._eos

    def batch(self, indices: list[int], *, with_reference: bool = True) -> Any:
        prompts: list[Any] = []
        slot: dict[str, int] = {}
        seqs = []
        for i in indices:
            pair = self.items[i]
            key = pair.sample.id
            if key not in slot:
                rendered = self._render(pair.sample)
                slot[key] = len(prompts)
                prompts.append(TrainPrompt(prompt_ids=rendered.prompt_ids, mm_tensors=rendered.mm_tensors, uid=key))
            ref = self.reference.get(pair.id) if with_reference else None
            for k, text in enumerate((pair.chosen, pair.rejected)):
                seqs.append(TrainSequence(prompt_index=slot[key], response_ids=self.response_ids(text), advantage=0.0,
                                          ref_logp=None if ref is None else ref[k]))
        return TrainBatch(prompts=prompts, sequences=seqs)

    def _render(self, sample: Any) -> Any:
        if sample.id in self._prompts:
            self._prompts.move_to_end(sample.id)
            return self._prompts[sample.id]
        prompt = render_sample(sample, self.policy, self.cfg, key_prefix="mpo")
        self._prompts[sample.id] = prompt
        if len(self._prompts) > 512:
            self._prompts.popitem(last=False)
        return prompt


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


def build_pairs(cfg: OmniRLConfig, run: Any, policy: Policy) -> PairData:
    """`data.path` (a pairs.jsonl), or pairs built from the stage's synthetic suite with the initial policy."""
    path = Path(cfg.data.path) if cfg.data.path is not None else default_pairs(cfg, run)
    result = load_pairs(path, rejects_path=run.dir / "rejects.jsonl")
    run.console.print(f"pairs {path}: " + ", ".join(f"{k} {v}" for k, v in result.counts.items())
                      + (f" (reasons in {run.dir / 'rejects.jsonl'})" if result.rejects else ""))
    if not result.pairs:
        raise ValueError(f"no usable pairs in {path}; see {run.dir / 'rejects.jsonl'}")
    return PairData(result.pairs, policy, cfg)


def default_pairs(cfg: OmniRLConfig, run: Any) -> Path:
    """pairs.jsonl of `omni-rl build-preferences` on the synthetic suite with the initial policy, in the cache (the
    job is resumable: an interrupted build continues)."""
    settings = {k: v for k, v in asdict(cfg).items() if k in ("model", "data", "rollout", "preferences")}
    settings["seed"] = cfg.run.seed
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = cache_dir() / "pairs" / f"{cfg.run.name}-{key}"
    with waiting_lock(out.with_name(f".{out.name}.lock")):  # a concurrent run with the same settings waits, then reuses
        if (out / "report.json").is_file() and (out / "pairs.jsonl").is_file():
            return out / "pairs.jsonl"
        run.console.print(f"building preference pairs with the initial policy (cached in {out})")
        job_cfg = replace(cfg, run=replace(cfg.run, output_dir=str(out)))
        if run_build_preferences(job_cfg, console=run.console) != 0:
            raise RuntimeError(f"building the preference pairs in {out} was interrupted; re-run to continue")
    import ray

    if ray.is_initialized():
        ray.shutdown()  # the stage starts its own actors with its own settings
    return out / "pairs.jsonl"


def reference_logps(run: Any, pairs: PairData, trainer: TrainerGroup, *, resumed: bool
                    ) -> dict[str, tuple[float, float]]:
    """{pair id: (chosen, rejected) summed log-probs} under the initial weights, computed once (before any update)
    and cached in the run dir; a resumed run must find the cache (its trainer no longer holds the initial weights)."""
    path = run.dir / REFERENCE_FILE
    ids = [p.id for p in pairs.items]
    if path.is_file():
        cached = {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
        if set(cached) >= set(ids):
            return cached
    if resumed:
        raise FileNotFoundError(f"{path} is missing or incomplete: the reference log-probs come from the initial "
                                "weights, which a resumed trainer no longer holds; start the run again")
    t = time.perf_counter()
    out: dict[str, tuple[float, float]] = {}
    chunk = 64
    for start in range(0, len(ids), chunk):
        idx = list(range(start, min(start + chunk, len(ids))))
        logp = trainer.compute_logp(pairs.batch(idx, with_reference=False))
        for j, i in enumerate(idx):
            out[ids[i]] = (float(sum(logp[2 * j])), float(sum(logp[2 * j + 1])))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    run.console.print(f"reference log-probs of {len(ids)} pairs in {time.perf_counter() - t:.1f}s -> {path}")
    return out
