"""Short supervised warm start of a tiny random-weight model, so that RL starts from a policy that follows the
answer format (`<think> ... </think>` then `\\boxed{answer}`) but is far from solving the tasks.

Why: a random-init tiny model never emits `\\boxed{}`; every rollout scores 0, every GSPO group has zero variance,
and RL has nothing to learn from. Real post-training starts from an SFT checkpoint; this is the offline stand-in.

How: teacher forcing on the synthetic suite's prompts (rendered through the model's own processor, media included)
with target `<think>\n{hint}\n</think>\n\n\boxed{answer}<|im_end|>`, summed token NLL (the one or two answer tokens
are not drowned by the format tokens; a row with `unanswerable: true` has no gold answer and its target is the
abstention `\\boxed{unanswerable}`, a built-in abstention marker), in two phases:

1. **Read.** Clean labels until the model reads every source: at every `check_every` steps, per source, the mean over
   rows of p(gold) among the row's candidate answers (the option letters, or the task's distinct answers) must be >=
   `read_target`. Tiny models learn a task like counting by a sudden jump after a plateau at chance (the supervised
   probe: image_count at p(gold) 0.25 for 240 steps, 0.92 at step 320), and the step of that jump moves with the float
   reductions of the machine (kernels, thread count). A fixed number of noisy steps therefore left image_count blind
   on some machines and not on others; stopping on the measured property does not.
2. **Flawed teacher.** `steps` steps in which, with probability `label_noise`, the target answer is the task's
   *confusion* of the gold answer: a fixed wrong answer that is a function of the gold one (the next option letter,
   the next word / number of the task's answer list, each word of a transcript replaced by the next word of the
   task's vocabulary, the click point mirrored through the screen's centre, and for a row with `unanswerable: true`
   an answer instead of the abstention: one its verifier's answerable rows give). The warm
   policy therefore keeps reading the input (the confusion depends on it) and follows the format, but puts only about
   `1 - label_noise` of its probability on the right answer. Finding out, from the verifier's reward alone, which of
   its two habits is right is the job RL then does. (Uniform random wrong labels do not work as well at this scale:
   the tiny model then learns the input -> answer mapping far more slowly, and RL starts from a policy that ignores
   the image.)

Deterministic by seed on one machine; cached next to the base checkpoint under a hash of every setting, written
atomically; `warm_start.json` in the checkpoint records the steps phase 1 took and the per-source preference after
each phase.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_rl.locks import waiting_lock

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily

log = logging.getLogger(__name__)

WARM_START_VERSION = 7  # 7: per-word ASR confusion, unanswerable rows confused with an answer
THINK_HINT = "Let me check."
ABSTAIN_TEXT = "unanswerable"  # the teacher's answer to a row with unanswerable: true (a built-in abstention marker)


def gold_text(verifier: str, answer: Any, verifier_kwargs: dict[str, Any]) -> str:
    """The string to put in `\\boxed{}` for a gold answer (a click point for a GUI bbox)."""
    if verifier == "gui-coordinate":
        a = [float(x) for x in answer]
        x, y = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2) if len(a) == 4 else (a[0], a[1])
        return f"({round(x)}, {round(y)})"
    return str(answer)


def sample_gold(sample: Any) -> str:
    """`gold_text` of a row; `ABSTAIN_TEXT` for a row with `unanswerable: true` (it has no gold answer)."""
    return ABSTAIN_TEXT if sample.unanswerable else gold_text(sample.verifier, sample.answer, sample.verifier_kwargs)


def sample_confused(sample: Any, pool: list[str]) -> str:
    """`confused_text` of a row; for a row with `unanswerable: true` the answer after the abstention in the sorted
    `pool` (`_train` passes the gold answers of every row with the row's verifier: the flawed teacher answers a question
    it should refuse), or the abstention itself when the pool has no other answer."""
    if sample.unanswerable:
        return _next_in(sorted(set(pool)), ABSTAIN_TEXT)
    return confused_text(sample.verifier, sample.answer, sample.verifier_kwargs, pool)


def answer_pools(samples: list[Any]) -> list[list[str]]:
    """Per row, the answers its confusion and its candidates are drawn from: the gold answers of its source; for a
    row with `unanswerable: true`, those of every row with its verifier (its source's are all the abstention)."""
    by_source: dict[str, list[str]] = {}
    by_verifier: dict[str, list[str]] = {}
    for s in samples:
        by_source.setdefault(s.source, []).append(sample_gold(s))
        by_verifier.setdefault(s.verifier, []).append(sample_gold(s))
    return [by_verifier[s.verifier] if s.unanswerable else by_source[s.source] for s in samples]


def _next_in(pool: list[str], gold: str) -> str:
    return pool[(pool.index(gold) + 1) % len(pool)] if gold in pool and len(pool) > 1 else gold


def target_text(answer_text: str) -> str:
    """The warm-start response for an answer: the format RL rewards, with a fixed one-line thought."""
    return f"<think>\n{THINK_HINT}\n</think>\n\n\\boxed{{{answer_text}}}<|im_end|>"


def pair_batch(pairs: list[tuple[Any, list[int]]]) -> Any:
    """A `TrainBatch` of (rendered prompt, response token ids) pairs, one sequence per pair (advantage unused)."""
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    batch = TrainBatch(prompts=[], sequences=[])
    for prompt, response_ids in pairs:
        batch.prompts.append(TrainPrompt(prompt_ids=prompt.prompt_ids, mm_tensors=prompt.mm_tensors))
        batch.sequences.append(TrainSequence(prompt_index=len(batch.prompts) - 1, response_ids=list(response_ids),
                                             advantage=0.0))
    return batch


def confused_text(verifier: str, answer: Any, kwargs: dict[str, Any], pool: list[str]) -> str:
    """The flawed teacher's answer: a fixed wrong answer, a function of the gold one (see the module docstring)."""
    gold = gold_text(verifier, answer, kwargs)
    if verifier == "gui-coordinate":
        x, y = (float(v) for v in gold.strip("()").split(","))
        w, h = kwargs["image_size"] if kwargs.get("coord_space") == "pixel" else (1000, 1000)
        return f"({round(w - x)}, {round(h - y)})"
    if verifier == "asr":  # every word replaced: a confusion sharing words with the gold would earn 1 - WER credit
        words = sorted({w for text in pool for w in text.split()} | set(gold.split()))
        return " ".join(_next_in(words, w) for w in gold.split())
    if verifier == "multiple-choice" and kwargs.get("options"):
        pool = sorted(kwargs["options"])
    return _next_in(sorted(set(pool)), gold)


def warm_start(model_dir: str | Path, suite_jsonl: str | Path, *, family: ModelFamily, steps: int = 500,
               lr: float = 1e-3, batch_size: int = 16, label_noise: float = 0.6, seed: int = 0,
               read_target: float = 0.9, max_read_steps: int = 3000, check_every: int = 50, focus: bool = False,
               check_rows: int = 0, video_fps: float = 4.0, video_max_frames: int = 8) -> Path:
    """Return the warm-started checkpoint dir of `model_dir`, a checkpoint of `family` (built on first call, cached).
    Two phases (module docstring): clean labels until every source is read (`read_target`, checked every
    `check_every` steps, at most `max_read_steps`), then `steps` steps of the flawed teacher (`label_noise`). What each phase reached is in `warm_start.json`.

    Many sources (a suite for every modality) learn slowly when each gets 1/K of the batch: `focus=True` draws 3/4 of
    each reading batch from the sources not read yet at the last check (the rest from all rows, so read sources are
    not forgotten), and `check_rows` > 0 measures the preference on that many rows per source (0: all)."""
    model_dir, suite_jsonl = Path(model_dir), Path(suite_jsonl)
    settings = {"model": model_dir.name, "suite": _file_hash(suite_jsonl), "steps": steps, "lr": lr,
                "batch_size": batch_size, "label_noise": label_noise, "seed": seed, "read_target": read_target,
                "max_read_steps": max_read_steps, "check_every": check_every, "v": WARM_START_VERSION}
    if focus or check_rows or (video_fps, video_max_frames) != (4.0, 8):  # all defaults: the key of earlier versions
        settings.update(focus=focus, check_rows=check_rows, video_fps=video_fps, video_max_frames=video_max_frames)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    final = model_dir.parent / f"{model_dir.name}-ws-{key}"
    if (final / "config.json").is_file():
        return final
    with waiting_lock(model_dir.parent / f".{final.name}.lock"):  # a concurrent run waits for this build, then reuses it
        if (final / "config.json").is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=model_dir.parent))
        try:
            report = _train(model_dir, family, suite_jsonl, tmp, steps=steps, lr=lr, batch_size=batch_size,
                            label_noise=label_noise, seed=seed, read_target=read_target, max_read_steps=max_read_steps,
                            check_every=check_every, focus=focus, check_rows=check_rows, video_fps=video_fps,
                            video_max_frames=video_max_frames)
            (tmp / "warm_start.json").write_text(json.dumps({**settings, **report}, indent=2))
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _train(model_dir: Path, family: ModelFamily, suite_jsonl: Path, out: Path, *, steps: int, lr: float,
           batch_size: int, label_noise: float, seed: int, read_target: float, max_read_steps: int,
           check_every: int, focus: bool, check_rows: int, video_fps: float, video_max_frames: int) -> dict:
    import torch

    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import render_prompt, tokenizer_of
    from omni_rl.models.policy import load_model, load_processor, save_policy

    torch.manual_seed(seed)
    rng = random.Random(seed)
    processor = load_processor(model_dir, family)
    tok = tokenizer_of(processor)
    samples = [s for s in load_samples(suite_jsonl, known_verifiers=lambda name: True).samples
               if s.modality in family.modalities]  # rows of other modalities are skipped
    if not samples:
        raise ValueError(f"no rows of {suite_jsonl} can be read by a {family.name} model")
    prompts = [render_prompt(s, processor, enable_thinking=True, video_fps=video_fps, video_max_frames=video_max_frames,
                             audio_in_video_key=family.audio_in_video_key) for s in samples]
    row_pools = answer_pools(samples)
    ids: dict[str, list[int]] = {}

    def target(answer_text: str) -> list[int]:
        if answer_text not in ids:
            ids[answer_text] = tok(target_text(answer_text), add_special_tokens=False)["input_ids"]
        return ids[answer_text]

    golds = [target(sample_gold(s)) for s in samples]
    confused = [target(sample_confused(s, pool)) for s, pool in zip(samples, row_pools)]
    candidates = [[target(a) for a in answer_candidates(s, pool)] for s, pool in zip(samples, row_pools)]
    model = load_model(model_dir, "float32", family=family)  # for omni: the thinker
    model.train()
    phase = _Phase(family.forward(model), prompts, golds, confused, candidates, [s.source for s in samples],
                   pad_id=tok.pad_token_id or 0, batch_size=batch_size, rng=rng, focus=focus, check_rows=check_rows)
    # phase 1: clean labels until the model reads every source (the step at which it does varies between machines)
    read_steps, read = phase.run(lr, max_read_steps, noise=0.0, until=read_target, check_every=check_every)
    unread = {k: round(v, 3) for k, v in read.items() if v < read_target}
    if unread:
        log.warning("warm start: after %d clean steps the model still does not read %s (p(gold) < %s); RL starts "
                    "from a policy that guesses on those tasks", read_steps, unread, read_target)
    # phase 2: the flawed teacher
    phase.run(lr, steps, noise=label_noise)
    # Weights under checkpoint_key names (save_pretrained would write Qwen2-Audio's LM as language_model.model.model.*,
    # which vLLM cannot load); config / tokenizer / processor / chat template / spk_dict copied unchanged.
    save_policy(model, family, model_dir, out)
    return {"read_steps": read_steps, "read_preference": read, "final_preference": phase.preference()}


MAX_CANDIDATES = 48  # a source with more distinct answers is measured on (gold, confused) only


def answer_candidates(sample: Any, pool: list[str]) -> list[str]:
    """The answers a row's `preference` is measured among: the option letters of a multiple-choice row, else every
    distinct gold answer of its source when there are at most `MAX_CANDIDATES`, else its gold and its confusion."""
    if sample.verifier == "multiple-choice" and sample.verifier_kwargs.get("options"):
        return sorted(sample.verifier_kwargs["options"])
    distinct = sorted(set(pool))
    if len(distinct) <= MAX_CANDIDATES:
        return distinct
    return sorted({sample_gold(sample), sample_confused(sample, pool)})


class _Phase:
    """Teacher forcing on (prompt, gold or confused target) pairs through the trainer's scoring path (one batched
    forward per step). `preference()` measures, per source, the mean over rows of p(gold) among the row's candidate
    answers (`answer_candidates`; softmax over the whole targets' log-probs): chance when the model ignores the input,
    1 when it reads it and answers right."""

    def __init__(self, fwd: Any, prompts: list[Any], golds: list[list[int]], confused: list[list[int]],
                 candidates: list[list[list[int]]], sources: list[str], *, pad_id: int, batch_size: int,
                 rng: random.Random, focus: bool = False, check_rows: int = 0):
        self.fwd, self.prompts, self.golds, self.confused, self.sources = fwd, prompts, golds, confused, sources
        self.candidates = candidates
        self.pad_id, self.batch_size, self.rng, self.order = pad_id, batch_size, rng, []
        self.focus, self.check_rows = focus, check_rows
        self.unread: set[str] = set()  # sources below the target at the last check (focus mode)
        self.focus_order: list[int] = []

    def _next(self) -> int:
        if self.focus and self.unread and self.rng.random() < 0.75:
            if not self.focus_order:
                self.focus_order = [i for i, s in enumerate(self.sources) if s in self.unread]
                self.rng.shuffle(self.focus_order)
            return self.focus_order.pop()
        if not self.order:
            self.order = list(range(len(self.prompts)))
            self.rng.shuffle(self.order)
        return self.order.pop()

    def run(self, lr: float, steps: int, *, noise: float, until: float | None = None,
            check_every: int = 50) -> tuple[int, dict[str, float]]:
        """Up to `steps` AdamW steps (warmup 20, linear decay to 5%); with `until`, stop at the first check where
        every source's preference is >= `until`. Returns (steps taken, last preference)."""
        import torch
        from rich.progress import Progress

        from omni_rl.training.forward import score

        model = self.fwd.model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)  # short memory: format first
        decay = max(steps, 1)  # warmup 20, then linear to 5%
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 20) * max(0.05, 1 - i / decay))
        pref: dict[str, float] = {}
        with Progress(transient=True) as bar:
            task = bar.add_task("warm start" + (" (reading)" if until else " (flawed teacher)"), total=steps)
            for step in range(steps):
                if until is not None and step % check_every == 0:
                    pref = self.preference()
                    if min(pref.values(), default=1.0) >= until:
                        return step, pref
                    unread = {k for k, v in pref.items() if v < until}
                    if unread != self.unread:
                        self.unread, self.focus_order = unread, []
                    worst = min(pref, key=pref.get)
                    bar.update(task, description=f"warm start (reading: p(gold) {pref[worst]:.2f} on {worst})")
                pairs = []
                for _ in range(self.batch_size):
                    i = self._next()
                    pairs.append((self.prompts[i], self.confused[i] if self.rng.random() < noise else self.golds[i]))
                scored = score(self.fwd, pair_batch(pairs), encoder_once=True, pad_id=self.pad_id)
                loss = -(scored.logp * scored.mask).sum(1).mean()  # summed token NLL per row, row mean
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                bar.advance(task)
        return steps, (self.preference() if until is not None else pref)

    def preference(self, chunk: int = 256) -> dict[str, float]:
        import torch

        from omni_rl.training.forward import score

        by_source: dict[str, list[float]] = {}
        rows = [i for i in range(len(self.prompts)) if len(self.candidates[i]) > 1]  # one answer: nothing to read
        if self.check_rows:  # the first check_rows rows of each source
            per_source: dict[str, list[int]] = {}
            for i in rows:
                per_source.setdefault(self.sources[i], []).append(i)
            rows = sorted(i for idx in per_source.values() for i in idx[:self.check_rows])
        with torch.no_grad():
            pairs = [(self.prompts[i], c) for i in rows for c in self.candidates[i]]
            seq = torch.cat([(out.logp * out.mask).sum(1) for out in
                             (score(self.fwd, pair_batch(pairs[lo:lo + chunk]), encoder_once=True,
                                    pad_id=self.pad_id) for lo in range(0, len(pairs), chunk))])
            start = 0
            for i in rows:
                k = len(self.candidates[i])
                p = torch.softmax(seq[start:start + k], dim=0)
                by_source.setdefault(self.sources[i], []).append(float(p[self.candidates[i].index(self.golds[i])]))
                start += k
        return {k: sum(v) / len(v) for k, v in sorted(by_source.items())}
