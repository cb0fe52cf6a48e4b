#!/usr/bin/env python
"""Trainer step time with encoder_once on vs off (image prompts, G rollouts each, vision encoder trainable).

encoder_once=True runs the vision tower once per unique prompt image and scatters the features into each of its G
rollouts; encoder_once=False is the plain HF forward with the pixels repeated per rollout (G vision forwards and
backwards per prompt). Everything else (LM forward/backward, AdamW step) is identical, so the ratio shows what the
dedup saves; it grows with the vision tower's share of the step.

    .venv/bin/python scripts/bench_encoder_once.py                       # tiny omni model, 64x80 images
    .venv/bin/python scripts/bench_encoder_once.py --vision-depth 8 --vision-hidden 128 --image-size 224
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def scaled_omni(base: Path, out: Path, *, depth: int, hidden: int, seed: int) -> Path:
    """The tiny omni checkpoint with a bigger random vision tower (same tokenizer / processor files)."""
    import torch
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    cfg = Qwen2_5OmniConfig.from_pretrained(base)
    v = cfg.thinker_config.vision_config
    v.depth, v.hidden_size, v.intermediate_size = depth, hidden, 4 * hidden
    v.num_heads = max(1, hidden // 32)
    v.fullatt_block_indexes = list(range(depth - 1, -1, -4))[::-1]
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(cfg).to(torch.float32)
    model.save_pretrained(out)
    for f in base.iterdir():
        if f.is_file() and not (out / f.name).exists():
            shutil.copy2(f, out / f.name)
    return out


def make_batch(model_path: Path, *, prompts: int, group: int, image_size: int, response_len: int, seed: int):
    import numpy as np
    import torch
    from PIL import Image

    from omni_rl.models.families import get_family
    from omni_rl.models.policy import load_processor
    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    proc = load_processor(model_path, get_family("omni"))
    proc.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": image_size * image_size}
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    tprompts, seqs = [], []
    for p in range(prompts):
        img = Image.fromarray((rng.random((image_size, image_size, 3)) * 255).astype("uint8"))
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"What is shown? ({p})"}]}]
        text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        out = dict(proc(text=[text], images=[img], return_tensors="pt"))
        ids = out.pop("input_ids")[0].tolist()
        out.pop("attention_mask")
        tprompts.append(TrainPrompt(prompt_ids=ids, mm_tensors=out, uid=str(p)))
        for _ in range(group):
            resp = torch.randint(20, 600, (response_len,), generator=g).tolist()
            seqs.append(TrainSequence(prompt_index=p, response_ids=resp, advantage=float(torch.randn((), generator=g))))
    return TrainBatch(prompts=tprompts, sequences=seqs)


def time_interleaved(model_path: Path, batch, *, steps: int, micro_batch_size: int) -> dict[bool, dict]:
    from omni_rl.bench.models import interleaved_train_steps
    from omni_rl.models.families import get_family
    from omni_rl.training.worker import TrainerWorker

    workers = {once: TrainerWorker(str(model_path), family=get_family("omni"), encoder_once=once,
                                   micro_batch_size=micro_batch_size, lr=1e-6, warmup_steps=0,
                                   freeze={"audio_encoder": True, "router": True}) for once in (True, False)}
    res = interleaved_train_steps(workers, batch, steps=steps)
    return {once: {"median_s": r["median_s"], "min_s": r["min_s"],
                   "media_encoded": r["metrics"]["train/encoder_media_items"],
                   "encoder_forwards": r["metrics"]["encoder/forwards"]} for once, r in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=2, help="unique image prompts per step")
    ap.add_argument("--group", type=int, default=16, help="rollouts per prompt (G)")
    ap.add_argument("--micro-batch-size", type=int, default=16, help="sequences per forward")
    ap.add_argument("--response-len", type=int, default=32, help="response tokens per rollout")
    ap.add_argument("--image-size", type=int, default=112, help="square image side in px (28 px = 1 LM token)")
    ap.add_argument("--vision-depth", type=int, default=0, help="0: the tiny omni model's own vision tower (2)")
    ap.add_argument("--vision-hidden", type=int, default=128, help="vision width when --vision-depth > 0")
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps per setting (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from omni_rl.models.tiny import build_tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = build_tiny_model("omni", seed=args.seed)
    tmp = None
    if args.vision_depth > 0:
        tmp = Path(tempfile.mkdtemp(prefix="bench_enc_once_"))
        model_path = scaled_omni(model_path, tmp / "model", depth=args.vision_depth, hidden=args.vision_hidden,
                                 seed=args.seed)
    try:
        batch = make_batch(model_path, prompts=args.prompts, group=args.group, image_size=args.image_size,
                           response_len=args.response_len, seed=args.seed)
        grid = batch.prompts[0].mm_tensors["image_grid_thw"][0].tolist()
        from omni_rl.models.families import get_family
        from omni_rl.models.policy import load_model

        m = load_model(model_path, family=get_family("omni"))
        n_vis = sum(p.numel() for n, p in m.named_parameters() if n.startswith("visual."))
        n_all = sum(p.numel() for p in m.parameters())
        del m
        label = "tiny omni" if tmp is None else f"omni with a {args.vision_depth}-layer vision tower"
        print(f"model {label}: {n_all / 1e6:.2f}M params, vision tower {n_vis / 1e6:.2f}M; "
              f"{args.prompts} prompts x G={args.group}, image {args.image_size}px -> patch grid {grid} "
              f"({len(batch.prompts[0].prompt_ids)} prompt tokens), {args.response_len} response tokens, "
              f"micro-batch {args.micro_batch_size}, "
              f"torch threads {torch.get_num_threads()}")
        res = time_interleaved(model_path, batch, steps=args.steps, micro_batch_size=args.micro_batch_size)
        for once in (True, False):
            print(f"encoder_once={str(once):5s}: step median {res[once]['median_s']:.3f} s "
                  f"(min {res[once]['min_s']:.3f} s), images through the vision tower per step "
                  f"{res[once]['media_encoded']:.0f}, encoder forwards per step {res[once]['encoder_forwards']:.0f}")
        print(f"speedup off/on: {res[False]['median_s'] / res[True]['median_s']:.2f}x (median step time), "
              f"{res[False]['min_s'] / res[True]['min_s']:.2f}x (min step time)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
