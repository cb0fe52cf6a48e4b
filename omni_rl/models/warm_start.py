"""Short supervised warm start of a tiny random-weight model, so that RL starts from a policy that follows the
answer format (`<think> ... </think>` then `\\boxed{answer}`) but is far from solving the tasks.

Why: a random-init tiny model never emits `\\boxed{}`; every rollout scores 0, every GSPO group has zero variance,
and RL has nothing to learn from. Real post-training starts from an SFT checkpoint; this is the offline stand-in.

How: teacher forcing on the synthetic suite's prompts (rendered through the model's own processor, media included)
with target `<think>\n{hint}\n</think>\n\n\boxed{answer}<|im_end|>`, summed token NLL (the one or two answer tokens
are not drowned by the format tokens). With probability `label_noise` the target answer is the task's *confusion* of
the gold answer: a fixed wrong answer that is a function of the gold one (the next option letter, the next word /
number of the task's answer list, the click point mirrored left-right). The warm policy therefore imitates a flawed
teacher: it reads the input (the confusion depends on it) and follows the format, but puts only about
`1 - label_noise` of its probability on the right answer. Finding out, from the verifier's reward alone, which of its
two habits is right is the job RL then does. (Uniform random wrong labels do not work as well at this scale: the
tiny model then learns the input -> answer mapping far more slowly, and RL starts from a policy that ignores the
image.) Deterministic by seed; cached next to the base checkpoint under a hash of every setting, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

WARM_START_VERSION = 4
THINK_HINT = "Let me check."
# Suite modalities each tiny family can read (rows of other modalities are skipped).
FAMILY_MODALITIES = {"text": {"text"}, "omni": {"text", "image", "video", "audio", "omni"},
                     "vl": {"text", "image", "video"}, "audio": {"text", "audio"}, "hf": {"text", "image"}}


def gold_text(verifier: str, answer: Any, verifier_kwargs: dict[str, Any]) -> str:
    """The string to put in `\\boxed{}` for a gold answer (a click point for a GUI bbox)."""
    if verifier == "gui-coordinate":
        a = [float(x) for x in answer]
        x, y = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2) if len(a) == 4 else (a[0], a[1])
        return f"({round(x)}, {round(y)})"
    return str(answer)


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
        w = kwargs["image_size"][0] if kwargs.get("coord_space") == "pixel" else 1000
        return f"({round(w - x)}, {round(y)})"
    if verifier == "multiple-choice" and kwargs.get("options"):
        pool = sorted(kwargs["options"])
    pool = sorted(set(pool))
    return pool[(pool.index(gold) + 1) % len(pool)] if gold in pool and len(pool) > 1 else gold


def warm_start(model_dir: str | Path, suite_jsonl: str | Path, *, steps: int = 500, lr: float = 1e-3,
               batch_size: int = 16, label_noise: float = 0.6, seed: int = 0) -> Path:
    """Return the warm-started checkpoint dir (built on first call, cached)."""
    model_dir, suite_jsonl = Path(model_dir), Path(suite_jsonl)
    settings = {"model": model_dir.name, "suite": _file_hash(suite_jsonl), "steps": steps, "lr": lr,
                "batch_size": batch_size, "label_noise": label_noise, "seed": seed, "v": WARM_START_VERSION}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    final = model_dir.parent / f"{model_dir.name}-ws-{key}"
    if (final / "config.json").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=model_dir.parent))
    try:
        _train(model_dir, suite_jsonl, tmp, steps=steps, lr=lr, batch_size=batch_size, label_noise=label_noise,
               seed=seed)
        (tmp / "warm_start.json").write_text(json.dumps(settings, indent=2))
        try:
            tmp.rename(final)
        except OSError:  # a concurrent builder won; its result is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _train(model_dir: Path, suite_jsonl: Path, out: Path, *, steps: int, lr: float, batch_size: int,
           label_noise: float, seed: int) -> None:
    import torch
    from rich.progress import Progress

    from omni_rl.data.loading import load_samples
    from omni_rl.data.render import render_prompt, tokenizer_of
    from omni_rl.models.policy import detect_family, load_model, load_processor, save_policy
    from omni_rl.training.forward import make_adapter, score

    torch.manual_seed(seed)
    rng = random.Random(seed)
    family = detect_family(model_dir)
    processor = load_processor(model_dir)
    tok = tokenizer_of(processor)
    samples = [s for s in load_samples(suite_jsonl, known_verifiers=lambda name: True).samples
               if s.modality in FAMILY_MODALITIES[family]]
    if not samples:
        raise ValueError(f"no rows of {suite_jsonl} can be read by a {family} model")
    prompts = [render_prompt(s, processor, enable_thinking=True, video_fps=4.0, video_max_frames=8) for s in samples]
    pools: dict[str, list[str]] = {}
    for s in samples:
        pools.setdefault(s.source, []).append(gold_text(s.verifier, s.answer, s.verifier_kwargs))
    model = load_model(model_dir, "float32", family=family)  # for omni: the thinker
    model.train()
    adapter = make_adapter(model, family)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)  # short memory: format first
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 20) * max(0.05, 1 - i / steps))
    order: list[int] = []
    with Progress(transient=True) as bar:
        task = bar.add_task("warm start", total=steps)
        for _ in range(steps):
            # one batched forward (the trainer's own scoring path) over `batch_size` (prompt, target) pairs
            pairs = []
            for _ in range(batch_size):
                if not order:
                    order = list(range(len(prompts)))
                    rng.shuffle(order)
                i = order.pop()
                s = samples[i]
                ans = (confused_text(s.verifier, s.answer, s.verifier_kwargs, pools[s.source])
                       if rng.random() < label_noise else gold_text(s.verifier, s.answer, s.verifier_kwargs))
                pairs.append((prompts[i], tok(target_text(ans), add_special_tokens=False)["input_ids"]))
            batch = pair_batch(pairs)
            scored = score(adapter, batch, encoder_once=True, pad_id=tok.pad_token_id or 0)
            loss = -(scored.logp * scored.mask).sum(1).mean()  # summed token NLL per row, row mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            bar.advance(task)
    # Weights under checkpoint_key names (save_pretrained would write Qwen2-Audio's LM as language_model.model.model.*,
    # which vLLM cannot load); config / tokenizer / processor / chat template / spk_dict copied unchanged.
    save_policy(model, family, model_dir, out)
