"""The MPO modes of `scripts/bench_vs_trl.py`: omni-rl's `stage=mpo` and TRL 1.16's `DPOTrainer` on the same pairs.

Both sides get the SAME checkpoint dir, pairs (one `pairs.jsonl` of `omni-rl build-preferences`, read by both with
`omni_rl.data.pairs.load_pairs`), pairs per optimizer step and per micro-batch, beta, loss weights, optimizer (AdamW,
lr, betas, weight decay, constant lr without warm-up, grad-norm clip), number of steps, and see the pairs in the SAME
order: the TRL dataset is written in the order omni-rl's preference loop takes them (`pair_order`: per-epoch shuffles
seeded with `run.seed`) and TRL reads it sequentially, so step k of both sides trains on the same 16 pairs, split
into the same micro-batches.

TRL side (`run_trl_mpo`), `DPOTrainer` with `DPOConfig`:
    loss_type=["sigmoid", "bco_pair"(, "sft")], loss_weights=[w_pref, w_quality(, w_sft)]   the sft term is left
                                          out when w_sft is 0 (nemotron_omni)
    beta                                  as omni-rl
    per_device_train_batch_size=pairs per micro-batch, gradient_accumulation_steps=pairs per step / that
    train_sampling_strategy="sequential"  the dataset is already in omni-rl's order
    precompute_ref_log_probs=True (text)  one reference pass before training, as omni-rl's cached reference pass;
                                          TRL refuses it for image pairs (see "Image pairs" below)
    max_length=None                       no truncation (omni-rl truncates nothing either)
    optim="adamw_torch", lr_scheduler_type="constant", warmup_steps=0, max_grad_norm, fp32 on CPU (use_cpu=True)
    gradient_checkpointing=False          parity (DPOConfig's default is True; omni-rl checkpoints nothing)
    weight decay on every parameter       parity: the HF Trainer leaves biases and norm weights out of weight decay
                                          (`get_decay_parameter_names`); omni-rl's AdamW decays every trainable
                                          tensor, so the TRL trainer here overrides that method
    report_to=[], no checkpoints, no progress bar

Data format (`trl_pair_rows`). TRL's conversational format renders the chosen / rejected turn through the chat
template, which ends an assistant turn with `<|im_end|>` + "\\n": one completion token more than omni-rl trains on
(the response text then `<|im_end|>`, the ids the policy generated). `fmt="standard"` (the default) gives TRL the
prompt already rendered by omni-rl's own `chat_text` and the response text + EOS, so both sides train on identical
token ids (`token_parity` checks it on the first step's pairs, pixel values included for images);
`fmt="conversational"` measures TRL's own conversational path.

The loss terms (TRL 1.16, trl/trainer/dpo_trainer.py):
    sigmoid   -logsig(beta * (lr_c - lr_r))                 (l. 1387-1388)   == omni-rl's DPO term
    bco_pair  -logsig(beta * lr_c) - logsig(-beta * lr_r)   (l. 1433-1436)   == omni-rl's BCO term with delta = 0;
                                                                              TRL has no reward shift
    sft       -mean of the chosen per-token log-probs over ALL chosen tokens of the micro-batch (l. 1495-1502);
              omni-rl takes each pair's token mean, then the mean over pairs: equal only when every chosen response
              of the micro-batch has the same length
omni-rl's delta starts at 0 and becomes 0.99 x delta + 0.01 x the step's mean implicit reward after each step. At
step 0 the policy is its own reference: every log-ratio, hence every reward, is 0, so delta is still 0 (to rounding)
at step 1; the two losses are comparable at steps 0 and 1 and part from step 2 on. `loss_check` runs TRL's own
`DPOTrainer._compute_loss` and omni-rl's `MPOObjective.micro_loss` on identical log-probs.

Image pairs: `precompute_ref_log_probs=True` raises in `DPOTrainer.__init__` for a vision dataset (dpo_trainer.py
l. 764-770: "`precompute_ref_log_probs=True` is not supported for vision datasets ..."), so TRL keeps a second copy
of the model as reference and runs a reference forward in every micro-batch; its vision collator also processes
each image twice per pair (chosen and rejected rows) in every step, where omni-rl renders a prompt once (LRU cache)
and encodes its media once per pair.

Step time. omni-rl: the preference loop's `time/step` (build the batch + train) from metrics.jsonl. TRL: the wall
time between consecutive `on_step_end`s (the first from `on_epoch_begin`): the HF Trainer fetches and collates a
step's micro-batches BEFORE `on_step_begin`, so begin -> end would leave out TRL's collation (tokenising and image
processing for image pairs); the interval also holds the logging of the previous step. The first step of each side
is warm-up and excluded from the mean. Memory and threads: as the GSPO modes (`omni_rl.bench.trl_baseline`).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omni_rl.bench.trl_baseline import (TreeMemorySampler, apply_vllm_cpu_env, child_main, measure_in_child,
                                      summarise)

SIDES = ("trl", "omni-rl")
TRL_FORMATS = ("standard", "conversational")


@dataclass
class MPOSideSpec:
    """Everything one MPO side needs, JSON-serialisable (it crosses into the child process)."""

    side: str  # "trl" | "omni-rl"
    model_dir: str
    pairs_path: str  # a pairs.jsonl (`omni-rl build-preferences`)
    family: str
    images: bool
    steps: int
    pairs_per_step: int
    pairs_per_micro_batch: int
    lr: float
    betas: list[float]
    weight_decay: float
    grad_clip: float
    beta: float
    w_pref: float
    w_quality: float
    w_sft: float
    seed: int
    out_dir: str
    trl_format: str = "standard"  # TRL side only: TRL_FORMATS (module docstring, "Data format")
    threads: int = 1
    extra_overrides: list[str] = field(default_factory=list)  # omni-rl side only


# -------------------------------------------------------------------------------------------------- pure helpers
def pair_order(n_pairs: int, steps: int, pairs_per_step: int, seed: int) -> list[int]:
    """The pair indices omni-rl's preference loop trains on, step after step (`PairData.step_indices` of steps
    0..steps-1, concatenated): the TRL dataset is written in this order and read sequentially."""
    from omni_rl.controller.preference import PairData

    sized = SimpleNamespace(items=range(n_pairs))  # step_indices only reads len(self.items)
    return [i for step in range(steps) for i in PairData.step_indices(sized, step, pairs_per_step, seed=seed)]


def trl_mpo_losses(w_pref: float, w_quality: float, w_sft: float) -> tuple[list[str], list[float]]:
    """DPOConfig's `loss_type` / `loss_weights` for w_pref x DPO + w_quality x BCO + w_sft x SFT (no sft term at 0)."""
    types, weights = ["sigmoid", "bco_pair"], [float(w_pref), float(w_quality)]
    if w_sft:
        types.append("sft")
        weights.append(float(w_sft))
    return types, weights


def trl_pair_rows(pairs: Sequence[Any], processor: Any, *, images: bool, fmt: str = "standard",
                  enable_thinking: bool = True) -> list[dict[str, Any]]:
    """TRL preference rows (`prompt` / `chosen` / `rejected`, plus `images` as PIL images for image pairs) of
    `omni_rl.data.pairs.Pair`s, in order.

    fmt="standard": the prompt rendered by omni-rl's own chat template call (`chat_text`, media placeholders
    included) and the response texts followed by the tokenizer's EOS (TRL's text path would add it, its vision path
    does not). fmt="conversational": the prompt as messages (`trl_messages`) and each response as one assistant turn.
    """
    from omni_rl.bench.trl_baseline import trl_messages
    from omni_rl.data.media import load_image
    from omni_rl.data.render import chat_text, media_parts, tokenizer_of

    if fmt not in TRL_FORMATS:
        raise ValueError(f"fmt must be one of {TRL_FORMATS}, got {fmt!r}")
    eos = tokenizer_of(processor).eos_token
    rows = []
    for pair in pairs:
        paths = [p for kind, p in media_parts(pair.sample.messages) if kind == "image"]
        if images and not paths:
            raise ValueError(f"pair {pair.id!r} has no image; image pairs need at least one")
        if fmt == "standard":
            prompt = chat_text(pair.sample.messages, processor, enable_thinking=enable_thinking)
            row: dict[str, Any] = {"prompt": prompt, "chosen": pair.chosen + eos, "rejected": pair.rejected + eos}
        else:
            messages, _ = trl_messages(pair.sample.messages, images=images)
            row = {"prompt": messages, "chosen": [{"role": "assistant", "content": pair.chosen}],
                   "rejected": [{"role": "assistant", "content": pair.rejected}]}
            if not enable_thinking:
                row["chat_template_kwargs"] = {"enable_thinking": False}
        if images:
            row["images"] = [load_image(p) for p in paths]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------- loss check
def trl_loss_on_logps(chosen_logps: Any, chosen_mask: Any, rejected_logps: Any, rejected_mask: Any,
                      ref_chosen: Any, ref_rejected: Any, *, beta: float, w_pref: float, w_quality: float,
                      w_sft: float) -> float:
    """TRL 1.16's own `DPOTrainer._compute_loss` on given per-token policy log-probs ([B, R] each, 0 past the mask)
    and summed reference log-probs ([B]) of one micro-batch, with `trl_mpo_losses(...)` and precomputed reference
    log-probs. The trainer and the model are stand-ins: the model returns the given log-probs where TRL's fused LM
    head would."""
    from collections import defaultdict

    import torch
    from trl.trainer.dpo_trainer import DPOTrainer

    token_logps = torch.cat([chosen_logps * chosen_mask, rejected_logps * rejected_mask])  # [2B, R]
    mask = torch.cat([chosen_mask, rejected_mask]).long()  # [2B, R]
    two_b = mask.shape[0]
    completion_mask = torch.cat([torch.zeros(two_b, 1, dtype=torch.long), mask], dim=1)  # one prompt token in front
    inputs = {"input_ids": torch.zeros_like(completion_mask), "attention_mask": torch.ones_like(completion_mask),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    outputs = SimpleNamespace(log_probs=token_logps, entropy=torch.zeros_like(token_logps),
                              mean_logits=torch.zeros_like(token_logps),
                              is_top1=torch.zeros_like(token_logps, dtype=torch.bool))
    types, weights = trl_mpo_losses(w_pref, w_quality, w_sft)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x),
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=types, loss_weights=weights, beta=beta, use_weighting=False, label_smoothing=0.0,
        _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1)
    loss = DPOTrainer._compute_loss(trainer, lambda **_: outputs, inputs, False)
    return float(loss)


def omni_rl_loss_on_logps(chosen_logps: Any, chosen_mask: Any, rejected_logps: Any, rejected_mask: Any,
                          ref_chosen: Any, ref_rejected: Any, *, beta: float, w_pref: float, w_quality: float,
                          w_sft: float, delta: float = 0.0) -> float:
    """omni-rl's `MPOObjective.micro_loss` + `normalized_sum` (what its trainer backpropagates for a one-micro-batch
    step) on the same inputs as `trl_loss_on_logps`, with the objective's delta set to `delta`."""
    import torch

    from omni_rl.algorithms.normalization import normalized_sum
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence
    from omni_rl.training.forward import ScoreOutput
    from omni_rl.training.objectives.mpo import MPOObjective

    b, r = chosen_logps.shape
    seqs, logp_rows, mask_rows = [], [], []
    for i in range(b):  # omni-rl's layout: chosen, rejected of pair 0, then of pair 1, ...
        for logps, mask, ref in ((chosen_logps, chosen_mask, ref_chosen), (rejected_logps, rejected_mask,
                                                                             ref_rejected)):
            n_tokens = int(mask[i].sum())
            seqs.append(TrainSequence(prompt_index=0, response_ids=[0] * n_tokens, advantage=0.0,
                                      ref_logp=float(ref[i])))
            logp_rows.append(logps[i] * mask[i])
            mask_rows.append(mask[i])
    batch = TrainBatch(prompts=[TrainPrompt(prompt_ids=[0])], sequences=seqs)
    out = ScoreOutput(logp=torch.stack(logp_rows), mask=torch.stack(mask_rows).to(chosen_logps.dtype),
                      media_encoded=0)
    objective = MPOObjective(beta=beta, w_pref=w_pref, w_quality=w_quality, w_sft=w_sft, delta=delta)
    res = objective.micro_loss(batch, out, None)  # MPO scores no reference (the pairs carry ref_logp)
    return float(normalized_sum(res.per_unit, res.weights, objective.count(batch)))


def loss_check(*, beta: float, w_pref: float, w_quality: float, w_sft: float, pairs: int = 8, max_len: int = 12,
               equal_lengths: bool = False, delta: float = 0.0, seed: int = 0) -> dict[str, float]:
    """Both losses on the same random micro-batch (float64): log-probs in [-3, 0), reference sums near the policy's,
    response lengths 1..max_len (all max_len with `equal_lengths`). Returns both losses and |omni-rl - TRL|."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = [[max_len if equal_lengths else int(torch.randint(1, max_len + 1, (1,), generator=g))
                for _ in range(pairs)] for _ in range(2)]
    masks = [torch.tensor([[1.0] * n + [0.0] * (max_len - n) for n in ls], dtype=torch.float64) for ls in lengths]
    logps = [-3.0 * torch.rand(pairs, max_len, generator=g, dtype=torch.float64) for _ in range(2)]
    refs = [(lp * m).sum(-1) + torch.randn(pairs, generator=g, dtype=torch.float64) for lp, m in zip(logps, masks)]
    args = (logps[0], masks[0], logps[1], masks[1], refs[0], refs[1])
    kw = dict(beta=beta, w_pref=w_pref, w_quality=w_quality, w_sft=w_sft)
    trl = trl_loss_on_logps(*args, **kw)
    omni = omni_rl_loss_on_logps(*args, **kw, delta=delta)
    return {"trl": trl, "omni_rl": omni, "abs_diff": abs(omni - trl)}


# ------------------------------------------------------------------------------------------------------ TRL side
def trl_dpo_config(out_dir: Path, spec: MPOSideSpec) -> Any:
    """The DPOConfig of the module docstring."""
    from trl import DPOConfig

    if spec.pairs_per_step % spec.pairs_per_micro_batch:
        raise ValueError(f"pairs per step ({spec.pairs_per_step}) must be a multiple of pairs per micro-batch "
                         f"({spec.pairs_per_micro_batch})")
    types, weights = trl_mpo_losses(spec.w_pref, spec.w_quality, spec.w_sft)
    return DPOConfig(
        output_dir=str(out_dir),
        # MPO as TRL's weighted sum of losses
        loss_type=types, loss_weights=weights, beta=spec.beta,
        precompute_ref_log_probs=not spec.images, precompute_ref_batch_size=spec.pairs_per_micro_batch,
        max_length=None, gradient_checkpointing=False, disable_dropout=True,
        # pairs per step, in omni-rl's order
        per_device_train_batch_size=spec.pairs_per_micro_batch,
        gradient_accumulation_steps=spec.pairs_per_step // spec.pairs_per_micro_batch, max_steps=spec.steps,
        train_sampling_strategy="sequential", dataloader_num_workers=0,
        # optimizer
        learning_rate=spec.lr, optim="adamw_torch", adam_beta1=spec.betas[0], adam_beta2=spec.betas[1],
        adam_epsilon=1e-8, weight_decay=spec.weight_decay, max_grad_norm=spec.grad_clip,
        lr_scheduler_type="constant", warmup_steps=0,
        # fp32 on CPU, nothing logged anywhere
        use_cpu=True, bf16=False, fp16=False, model_init_kwargs={"dtype": "float32"},
        report_to=[], logging_steps=1, save_strategy="no", disable_tqdm=True, seed=spec.seed,
    )


def pref_step_clock() -> Any:
    """A TrainerCallback recording, per optimizer step, the wall time since the previous step ended (`.step_times`;
    the first since `on_epoch_begin`), the time spent in phases wrapped with `.timed(phase, fn)` in that interval
    (`.phase_times`) and TRL's logs (`.logs`)."""
    from omni_rl.bench.trl_baseline import step_clock

    class PrefStepClock(type(step_clock())):  # the GSPO clock's state and `.timed`, measured step end to step end
        def on_step_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            pass

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if not self.step_times:
                self._phases = {}
                self._t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            now = time.perf_counter()
            self.step_times.append(now - self._t0)
            self.phase_times.append(dict(self._phases))
            self._phases = {}
            self._t0 = now

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **_: Any) -> None:
            if logs is not None and "loss" in logs:
                self.logs.append(dict(logs))

    return PrefStepClock()


def build_trl_dpo_trainer(spec: MPOSideSpec, pairs: Sequence[Any]) -> tuple[Any, Any, Any]:
    """A ready DPOTrainer on `pairs` (already in training order), its step clock and its collator (unwrapped)."""
    import datasets
    from trl import DPOTrainer

    from omni_rl.bench.trl_baseline import check_trl_supports
    from omni_rl.models.families import get_family
    from omni_rl.models.policy import load_processor

    class AllDecayDPOTrainer(DPOTrainer):
        """Weight decay on every parameter, as omni-rl's AdamW (module docstring)."""

        def get_decay_parameter_names(self, model: Any) -> list[str]:
            return [name for name, _ in model.named_parameters()]

    check_trl_supports(Path(spec.model_dir))
    processor = load_processor(spec.model_dir, get_family(spec.family))
    ds = datasets.Dataset.from_list(trl_pair_rows(pairs, processor, images=spec.images, fmt=spec.trl_format))
    clock = pref_step_clock()
    trainer = AllDecayDPOTrainer(model=str(spec.model_dir), args=trl_dpo_config(Path(spec.out_dir), spec),
                                 train_dataset=ds, callbacks=[clock])
    collator = trainer.data_collator
    trainer.data_collator = clock.timed("collate", collator)
    return trainer, clock, collator


def token_parity(trainer: Any, collator: Any, pairs: Sequence[Any], *, images: bool) -> dict[str, Any]:
    """Do TRL's training sequences of `pairs` (the first rows of its dataset) hold exactly omni-rl's token ids?

    omni-rl's: the prompt of `render_prompt` and each response's `PairData.response_ids` (text + EOS). TRL's: its
    tokenised dataset (text pairs) or its vision collator's output for one pair (image pairs), split at the
    completion mask; for image pairs also the largest |pixel_values difference| of the prompt's images."""
    import torch

    from omni_rl.config.schema import DataConfig
    from omni_rl.controller.preference import PairData
    from omni_rl.data.render import render_prompt

    processor = trainer.processing_class
    ours = PairData([], SimpleNamespace(processor=processor), cfg=None)
    data_cfg = DataConfig()
    out: dict[str, Any] = {"pairs": len(pairs), "sequences": 2 * len(pairs), "identical_sequences": 0,
                           "identical_prompts": 0, "extra_completion_tokens": 0, "first_difference": None}
    pixel_diff = 0.0
    for j, pair in enumerate(pairs):
        rendered = render_prompt(pair.sample, processor, enable_thinking=True, video_fps=data_cfg.video_fps,
                                 video_max_frames=data_cfg.video_max_frames)
        want = [ours.response_ids(pair.chosen), ours.response_ids(pair.rejected)]
        if images:
            batch = collator([copy.deepcopy(trainer.train_dataset[j])])
            ids, cm, am = batch["input_ids"], batch["completion_mask"].bool(), batch["attention_mask"].bool()
            prompt = ids[0][am[0] & ~cm[0]].tolist()
            got = [ids[k][cm[k]].tolist() for k in (0, 1)]
            theirs_px = batch["pixel_values"]
            mine_px = rendered.mm_tensors["pixel_values"]
            n_px = mine_px.shape[0]
            pixel_diff = max(pixel_diff, float((theirs_px[:n_px].to(torch.float64) - mine_px.to(torch.float64))
                                               .abs().max()))
        else:
            row = trainer.train_dataset[j]
            prompt, got = list(row["prompt_ids"]), [list(row["chosen_ids"]), list(row["rejected_ids"])]
        out["identical_prompts"] += prompt == rendered.prompt_ids
        for g, w in zip(got, want, strict=True):
            same = g == w and prompt == rendered.prompt_ids
            out["identical_sequences"] += same
            out["extra_completion_tokens"] += len(g) - len(w)
            if not same and out["first_difference"] is None:
                tok = getattr(processor, "tokenizer", processor)
                out["first_difference"] = {"pair": pair.id, "trl_completion": tok.decode(g),
                                           "omni_rl_completion": tok.decode(w),
                                           "prompts_equal": prompt == rendered.prompt_ids}
    if images:
        out["pixel_values_max_abs_diff"] = pixel_diff
    return out


def run_trl_mpo(spec: MPOSideSpec) -> dict[str, Any]:
    """Run `spec.steps` MPO steps with TRL's DPOTrainer (module docstring) in THIS process; returns `summarise(...)`
    with per-step wall times and losses, TRL's per-step logs and the token parity of the first step's pairs."""
    from omni_rl.data.pairs import load_pairs

    t0 = time.perf_counter()
    pairs = load_pairs(spec.pairs_path).pairs
    order = pair_order(len(pairs), spec.steps, spec.pairs_per_step, spec.seed)
    ordered = [pairs[i] for i in order]
    trainer, clock, collator = build_trl_dpo_trainer(spec, ordered)
    parity = token_parity(trainer, collator, ordered[:spec.pairs_per_step], images=spec.images)
    setup_s = time.perf_counter() - t0
    trainer.train()
    wall_s = time.perf_counter() - t0
    logs = clock.logs
    extra = {
        "losses": [row["loss"] for row in logs],
        "grad_norms": [row.get("grad_norm") for row in logs],
        "accuracy": [row.get("rewards/accuracies") for row in logs],
        "reward_margin": [row.get("rewards/margins") for row in logs],
        "delta": [0.0 for _ in logs],  # bco_pair has no reward shift
        "time_split_mean_s": _phase_means(clock.step_times, clock.phase_times, ("collate",)),
        "token_parity": parity,
        "first_pair_ids": [p.id for p in ordered[:spec.pairs_per_step]],
        "precompute_ref_log_probs": trainer.precompute_ref_logps,
        "reference_model_copy": trainer.ref_model is not None,
        "trl_logs": logs,
    }
    return summarise("trl", clock.step_times, [], setup_s=setup_s, wall_s=wall_s, extra=extra)


def _phase_means(step_times: Sequence[float], phases: Sequence[dict[str, float]],
                 names: Sequence[str]) -> dict[str, float]:
    """Mean seconds per phase over the steps `mean_step_s` uses (`time/<phase>`), plus `time/other` = step - phases."""
    from statistics import fmean

    keep = slice(1, None) if len(step_times) >= 2 else slice(None)
    steps, rows = list(step_times)[keep], list(phases)[keep]
    out = {f"time/{n}": fmean(r.get(n, 0.0) for r in rows) for n in names}
    out["time/other"] = fmean(t - sum(r.get(n, 0.0) for n in names) for t, r in zip(steps, rows, strict=True))
    out["time/step"] = fmean(steps)
    return out


# -------------------------------------------------------------------------------------------------- omni-rl side
def omni_rl_mpo_overrides(spec: MPOSideSpec) -> list[str]:
    """Hydra overrides that make `omni-rl run stage=mpo` run the same work as `run_trl_mpo` (module docstring)."""
    return [
        "stage=mpo",
        f"model.family={spec.family}", f"model.path={Path(spec.model_dir).resolve()}", "model.warm_start=false",
        f"data.path={Path(spec.pairs_path).resolve()}", f"data.seed={spec.seed}",
        f"run.steps={spec.steps}", f"run.prompts_per_step={spec.pairs_per_step}", f"run.seed={spec.seed}",
        f"run.output_dir={Path(spec.out_dir).resolve()}", f"run.checkpoint_every={spec.steps}", "run.eval_every=0",
        "algorithm.mpo.preset=null", f"algorithm.mpo.beta={spec.beta}", f"algorithm.mpo.w_pref={spec.w_pref}",
        f"algorithm.mpo.w_quality={spec.w_quality}", f"algorithm.mpo.w_sft={spec.w_sft}",
        f"trainer.lr={spec.lr}", "trainer.warmup_steps=0", "trainer.lr_schedule=constant",
        f"trainer.weight_decay={spec.weight_decay}", f"trainer.betas=[{spec.betas[0]},{spec.betas[1]}]",
        f"trainer.grad_clip={spec.grad_clip}", f"trainer.micro_batch_size={2 * spec.pairs_per_micro_batch}",
        "trainer.optimizer_steps_per_batch=1", "trainer.num_workers=1",
        *(f"trainer.freeze.{part}=false" for part in ("vision_encoder", "audio_encoder", "projector", "lm_body",
                                                      "lm_embeddings", "lm_head", "router")),
        "logging.wandb_mode=disabled", "logging.progress=false", "logging.plot=false",
    ]


def run_omni_rl_mpo(spec: MPOSideSpec) -> dict[str, Any]:
    """Run `spec.steps` steps of `omni-rl run stage=mpo` in THIS process (Ray local cluster, no vLLM: evaluation
    is off); per-step `time/step`, `train/loss`, `train/grad_norm` and `mpo/*` come from `<run_dir>/metrics.jsonl`.
    `out_dir` is deleted first (a fresh run with its own reference pass, not a resume)."""
    import shutil

    from omni_rl.config import compose_config
    from omni_rl.controller import run_stage

    out_dir = Path(spec.out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    overrides = omni_rl_mpo_overrides(spec)
    cfg = compose_config([*overrides, *spec.extra_overrides])
    t0 = time.perf_counter()
    run_dir = Path(run_stage(cfg))
    wall_s = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "train/loss" in r]
    step_times = [r["time/step"] for r in rows]
    keep = rows[1:] if len(rows) >= 2 else rows
    extra = {
        "losses": [r["train/loss"] for r in rows],
        "grad_norms": [r.get("train/grad_norm") for r in rows],
        "accuracy": [r.get("mpo/accuracy") for r in rows],
        "reward_margin": [r.get("mpo/reward_margin") for r in rows],
        "delta": [r.get("mpo/delta") for r in rows],  # after each step's update (the next step uses it)
        "time_split_mean_s": {"time/build": sum(r["time/build"] for r in keep) / len(keep),
                              "time/other": sum(r["time/step"] - r["time/build"] for r in keep) / len(keep)},
        "overrides": overrides,
        "metrics": rows,
    }
    # setup = wall time not spent inside steps (model load, Ray start, trainer actor, reference pass, final export)
    return summarise("omni-rl", step_times, [], setup_s=wall_s - sum(step_times), wall_s=wall_s, extra=extra)


# ------------------------------------------------------------------------------------------- per-side processes
def run_mpo_side(spec: MPOSideSpec) -> dict[str, Any]:
    """Run one side in THIS process under the memory sampler (the child's entry point)."""
    if spec.side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {spec.side!r}")
    apply_vllm_cpu_env()
    with TreeMemorySampler() as mem:
        result = run_trl_mpo(spec) if spec.side == "trl" else run_omni_rl_mpo(spec)
    return {**result, **mem.result(), "spec": asdict(spec)}


def measure_mpo_side(spec: MPOSideSpec, *, timeout_s: float = 3600.0) -> dict[str, Any]:
    """`run_mpo_side(spec)` in a fresh child process (`trl_baseline.measure_in_child`)."""
    return measure_in_child("omni_rl.bench.trl_mpo", asdict(spec), out_dir=Path(spec.out_dir), side=spec.side,
                            threads=spec.threads, timeout_s=timeout_s)


def main(argv: Sequence[str] | None = None) -> None:
    child_main(argv, MPOSideSpec, run_mpo_side, "the MPO comparison (child of measure_mpo_side)")


if __name__ == "__main__":
    main()
