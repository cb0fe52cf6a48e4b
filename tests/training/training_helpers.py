"""Small TrainBatches for the trainer tests, with real processor outputs (no mocks)."""

from __future__ import annotations

import numpy as np
import torch

from omni_rl.data.render import processor_kwargs
from omni_rl.models.families import get_family
from omni_rl.models.families.omni import AUDIO_IN_VIDEO
from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

TEXT, OMNI = get_family("text"), get_family("omni")  # the families of the `text_model_path` / `omni_model_path` models


def mm_prompt(processor, kind: str, seed: int) -> TrainPrompt:
    """A real processor output (omni / vl / audio families): kind in text / image / video / audio / image+audio, or
    video+track (omni: a video with its own 2 s soundtrack, interleaved with the frames: `use_audio_in_video`)."""
    rng = np.random.default_rng(seed)
    parts, kw = [], {}
    if "image" in kind:
        from PIL import Image

        parts.append({"type": "image"})
        kw["images"] = [Image.fromarray((rng.random((64, 80, 3)) * 255).astype("uint8"))]
    if "video" in kind:
        parts.append({"type": "video"})
        kw["videos"] = [(rng.random((4, 56, 56, 3)) * 255).astype("uint8")]  # 4 frames -> 2 temporal patches
    if "audio" in kind:
        parts.append({"type": "audio"})
        kw["audio"] = [rng.standard_normal(16000).astype("float32")]
    if "track" in kind:  # 12 frames at 4 fps (6 temporal patches, 2 chunks of 2 s) + 3 s of sound (75 tokens)
        kw["videos"] = [(rng.random((12, 56, 56, 3)) * 255).astype("uint8")]
        kw["audio"] = [rng.standard_normal(48000).astype("float32")]
        kw.update(processor_kwargs(processor, has_video=True, video_fps=4.0, use_audio_in_video=True))
    msgs = [{"role": "user", "content": parts + [{"type": "text", "text": f"Question {seed}?"}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    out = dict(processor(text=[text], return_tensors="pt", **kw))
    ids = out.pop("input_ids")[0].tolist()
    out.pop("attention_mask")
    if "track" in kind:
        out[AUDIO_IN_VIDEO] = torch.ones(1, dtype=torch.bool)
    return TrainPrompt(prompt_ids=ids, mm_tensors=out, uid=f"{kind}-{seed}")


def random_sequences(n_prompts: int, per_prompt: int, *, seed: int, vocab: tuple[int, int] = (20, 400),
                     max_len: int = 6) -> list[TrainSequence]:
    """`per_prompt` rollouts per prompt, random tokens of length 1..max_len, advantages in [-1.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    seqs = []
    for p in range(n_prompts):
        for _ in range(per_prompt):
            n = int(torch.randint(1, max_len + 1, (1,), generator=g))
            ids = torch.randint(vocab[0], vocab[1], (n,), generator=g).tolist()
            adv = float(torch.rand((), generator=g) * 3 - 1.5)
            seqs.append(TrainSequence(prompt_index=p, response_ids=ids, advantage=adv))
    return seqs


def text_batch(seed: int = 0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed + 100)
    prompts = [TrainPrompt(prompt_ids=torch.randint(10, 400, (n,), generator=g).tolist(), uid=f"t{n}")
               for n in (5, 8, 3)]
    return TrainBatch(prompts=prompts, sequences=random_sequences(3, 3, seed=seed))


def run_two_ranks(target, *args, out_dir, world_size: int = 2) -> list[dict]:
    """Run `target(rank, port, *args, out_dir)` in `world_size` spawned processes (a real gloo group on a free port),
    assert all exit 0, and return what each saved to `<out_dir>/<rank>.pt`. Spawned, so a group cannot clash with
    one left in the pytest process (an in-process vLLM engine leaves one)."""
    import multiprocessing as mp
    from pathlib import Path

    from omni_rl.training.dist import free_port

    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(r, port, *args, str(out_dir))) for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0, f"rank process exit code {p.exitcode}"
    return [torch.load(Path(out_dir) / f"{r}.pt", weights_only=True) for r in range(world_size)]
