"""The GSPO stage loop (text_rl_1, image_rl, omni_rl, text_rl_2): read this file top to bottom.

One step:
    sample B prompts from the mixture      (MixtureSampler: pure function of (seed, step) -> exact resume)
    render each prompt ONCE                (token ids + processed media, shared by its G rollouts)
    generate G rollouts per prompt         (Ray actors hosting vLLM; one request with n=G per prompt)
    verify                                 (process pool with per-item deadlines; errors score 0 and are counted)
    group advantages                       (mean/std over each prompt's G rewards; zero-variance groups skipped)
    train                                  (data-parallel trainer actors, exact global normalisation, GSPO)
    refit weights                          (trainer state dict -> every vLLM worker, in place, versioned)
    log + checkpoint                       (metrics.jsonl, wandb offline, keep-last-k checkpoints)
    every run.eval_every steps             (greedy pass over the held-out set: eval/* metrics)

Setup lives in `omni_rl.wiring` (shared with the offline jobs); every Ray call is behind the rollout / trainer group
objects.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from omni_rl.config.schema import OmniRLConfig
from omni_rl.controller.checkpoint import RunCheckpointer
from omni_rl.controller.crash import simulate_crash
from omni_rl.controller.evaluate import evaluate
from omni_rl.controller.plots import write_plots
from omni_rl.controller.stats import reward_metrics, rollout_metrics
from omni_rl.controller.train_batch import build_train_batch
from omni_rl.interrupts import sigint_flag
from omni_rl.rollout.group import RolloutGroup
from omni_rl.rollout.worker import SEED_STRIDE
from omni_rl.wiring.data import Data, build_data
from omni_rl.wiring.groups import build_workers, init_ray, record_placement
from omni_rl.wiring.policy import Policy, build_policy
from omni_rl.wiring.run import build_run
from omni_rl.wiring.startup import Background, StartupClock
from omni_rl.wiring.verifiers import RolloutScorer, build_rollout_scorer

if TYPE_CHECKING:
    from omni_rl.training.group import TrainerGroup


def train_rl(cfg: OmniRLConfig) -> Path:
    clock = StartupClock()  # where the fixed seconds go: startup.json + one printed line
    run = build_run(cfg)  # run dir, resolved config, console, metrics logger (truncated to the resume step)

    def policy_and_data() -> tuple[Policy, Data, Data | None]:
        policy = build_policy(cfg, run)  # checkpoint dir (tiny model built / warm-started when needed), processor
        clock.lap_of("setup/policy")
        data = build_data(cfg, run, policy)  # samples (+ rejects file), mixture sampler, prompt renderer
        eval_data = build_data(cfg, run, policy, split="eval") if cfg.run.eval_every > 0 else None  # held-out
        clock.lap_of("setup/data")
        return policy, data, eval_data

    # the policy and data are built while Ray starts (Ray must start in the main thread: its processes die with
    # the thread that forked them)
    pending = Background(policy_and_data, "omni-rl-policy")
    init_ray(cfg)
    clock.lap_of("setup/ray")
    policy, data, eval_data = pending.result()
    clock.lap("setup")
    verifier = build_rollout_scorer(cfg)
    clock.lap("verifiers")
    trainer, rollout = build_workers(cfg, policy, clock=clock)  # started side by side
    clock.lap("workers")
    record_placement(run, trainer, rollout)
    ckpt = RunCheckpointer(run.dir / "checkpoints", keep_last=cfg.run.keep_last)
    start_step = ckpt.restore(trainer, rollout) if cfg.run.resume else 0
    if cfg.run.resume:
        clock.lap("restore")
    clock.report(run)
    run.logger.open(resume_step=start_step - 1 if cfg.run.resume else None)
    run.console.print(f"[bold]{cfg.run.name}[/]: steps {start_step}..{cfg.run.steps - 1}, "
                      f"{cfg.run.prompts_per_step} prompts x {cfg.rollout.n} rollouts, run dir {run.dir}")
    try:
        with sigint_flag() as ctrl_c, run.progress(total=cfg.run.steps, start=start_step) as progress:
            for step in range(start_step, cfg.run.steps):
                evals = (evaluate(eval_data, rollout, verifier, step=step)  # the policy this step samples from
                         if eval_data is not None and (step % cfg.run.eval_every == 0 or step + 1 == cfg.run.steps)
                         else {})
                metrics = {**rl_step(cfg, step, data, rollout, verifier, trainer), **evals}
                run.log_samples(step, metrics.pop("_samples"))
                run.logger.log(step, metrics)
                run.console.print(run.summary_line(step, metrics), soft_wrap=True)  # one line per step
                progress.advance()
                if (step + 1) % cfg.run.checkpoint_every == 0 or step + 1 == cfg.run.steps:
                    ckpt.save(step, trainer)
                if cfg.run.stop_after_steps is not None and step + 1 >= cfg.run.stop_after_steps:
                    simulate_crash(run.console)  # test hook: die like a killed job (no cleanup, no final save)
                ctrl_c.check()  # a Ctrl-C swallowed by a finalizer still stops the run after this step
        ckpt.export_final(trainer, run.dir / "final", copy_from=policy.path)  # HF dir: the next stage's input
    finally:
        run.logger.close()
        rollout.shutdown()
        trainer.shutdown()
        verifier.close()
    if cfg.logging.plot:
        write_plots(run)
    return run.dir


def rl_step(cfg: OmniRLConfig, step: int, data: Data, rollout: RolloutGroup, verifier: RolloutScorer,
            trainer: TrainerGroup) -> dict[str, float]:
    t_step = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. sample + render once per prompt (media decoded and processed once; its G rollouts reference it)
    t = time.perf_counter()
    prompts = [data.render(i) for i in data.sampler.batch(step, cfg.run.prompts_per_step)]
    timings["time/render"] = time.perf_counter() - t

    # 2. generate: one request per prompt with n=G, sharded over the vLLM actors
    t = time.perf_counter()
    groups, gen_metrics = rollout.generate(prompts, n=cfg.rollout.n, seed=cfg.run.seed * SEED_STRIDE + step)
    timings["time/generate"] = time.perf_counter() - t

    # 3. verify all B*G responses (reward in [0, 1]; exceptions and timeouts score 0 and are counted)
    t = time.perf_counter()
    scored, verify_stats = verifier.score_groups(prompts, groups)
    timings["time/verify"] = time.perf_counter() - t

    # 4. group-normalised advantages; zero-variance groups contribute nothing
    batch, adv_metrics = build_train_batch(cfg, prompts, scored)

    # 5. train (data-parallel, global normalisation computed once per optimizer step)
    t = time.perf_counter()
    train_metrics = (trainer.train(batch, num_minibatches=cfg.trainer.optimizer_steps_per_batch)
                     if batch.num_sequences else {"train/skipped_empty_batch": 1.0})
    timings["time/train"] = time.perf_counter() - t

    # 6. push the new weights into every vLLM worker (in place, versioned; fails loudly on timeout)
    t = time.perf_counter()
    rollout.update_weights(trainer.weight_stream(), version=step + 1)
    timings["time/refit"] = time.perf_counter() - t

    timings["time/step"] = time.perf_counter() - t_step
    n_tokens = sum(len(r.rollout.token_ids) for g in scored for r in g)
    samples = [{"id": p.sample.id, "source": p.sample.source, "answer": p.sample.answer, "response": g[0].rollout.text,
                "reward": g[0].reward, "error": g[0].verifier_error} for p, g in zip(prompts[:4], scored[:4])]
    return {
        **reward_metrics(prompts, scored, verify_stats),
        **rollout_metrics(scored),
        **gen_metrics,
        **adv_metrics,
        **train_metrics,
        **timings,
        "throughput/gen_tokens_per_s": n_tokens / max(timings["time/generate"], 1e-9),
        "_samples": samples,  # a few responses per step, written to samples.jsonl (not a metric)
    }
