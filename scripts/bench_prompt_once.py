#!/usr/bin/env python
"""Trainer step time with trainer.prompt_once on vs off: G rollouts of one long prompt, short responses.

prompt_once=False runs every rollout's whole sequence (prompt + response) through the decoder: G copies of the
prompt per group. prompt_once=True runs each unique prompt through the decoder once, keeps its keys / values in the
autograd graph, and runs only the G responses attending to them; gradients flow back into the shared prompt pass.
The two give the same log-probs and gradients (tests/training/test_forward.py, float64); this prints the step time
of each, side by side in one run (steps alternate between the two workers), and the largest log-prob difference
between them on the benchmark batch as a check.

The model is the text family's Qwen3-style architecture at a chosen size (random weights, built offline and cached
under --out). Every attention-decoder family (text, vl, omni, audio) scores through the same two decoder passes,
so the ratio carries over to a long image / video / audio prompt of the same token count.

    .venv/bin/python scripts/bench_prompt_once.py                          # 2,000:40 tokens, G = 16
    .venv/bin/python scripts/bench_prompt_once.py --prompt-len 500 --response-len 100 --hidden 512 --layers 8
"""

from __future__ import annotations

import argparse
from pathlib import Path


def make_batch(*, prompts: int, group: int, prompt_len: int, response_len: int, vocab: int, seed: int):
    """`prompts` random prompts of `prompt_len` tokens, `group` random responses of `response_len` tokens each."""
    import torch

    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    g = torch.Generator().manual_seed(seed)
    tprompts, seqs = [], []
    for p in range(prompts):
        tprompts.append(TrainPrompt(prompt_ids=torch.randint(20, vocab, (prompt_len,), generator=g).tolist(),
                                    uid=str(p)))
        for _ in range(group):
            resp = torch.randint(20, vocab, (response_len,), generator=g).tolist()
            seqs.append(TrainSequence(prompt_index=p, response_ids=resp, advantage=float(torch.randn((), generator=g))))
    return TrainBatch(prompts=tprompts, sequences=seqs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=1, help="unique prompts per step")
    ap.add_argument("--group", type=int, default=16, help="rollouts per prompt (G)")
    ap.add_argument("--prompt-len", type=int, default=2000, help="prompt tokens")
    ap.add_argument("--response-len", type=int, default=40, help="response tokens per rollout")
    ap.add_argument("--micro-batch-size", type=int, default=16, help="sequences per forward")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--mlp", type=int, default=768)
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps per setting (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_prompt_once"), help="model cache")
    args = ap.parse_args()

    import torch

    from omni_rl.bench.models import interleaved_train_steps, scaled_text_model
    from omni_rl.training.worker import TrainerWorker

    if args.threads:
        torch.set_num_threads(args.threads)
    model = scaled_text_model(args.out / "model", hidden=args.hidden, layers=args.layers, heads=args.heads,
                              kv_heads=args.kv_heads, mlp=args.mlp, seed=args.seed)
    workers = {once: TrainerWorker(str(model), prompt_once=once, micro_batch_size=args.micro_batch_size, lr=1e-6,
                                   seed=args.seed) for once in (False, True)}
    vocab = workers[False].model.config.vocab_size
    batch = make_batch(prompts=args.prompts, group=args.group, prompt_len=args.prompt_len,
                       response_len=args.response_len, vocab=vocab, seed=args.seed)
    n_params = sum(p.numel() for p in workers[False].model.parameters())
    full_tokens = sum(len(batch.prompts[s.prompt_index].prompt_ids) + len(s.response_ids) for s in batch.sequences)
    once_tokens = sum(len(p.prompt_ids) for p in batch.prompts) + sum(len(s.response_ids) for s in batch.sequences)
    print(f"model: text family at hidden {args.hidden}, {args.layers} layers ({n_params / 1e6:.1f}M params); "
          f"{args.prompts} prompt(s) x G={args.group}, {args.prompt_len}:{args.response_len} prompt:response tokens, "
          f"micro-batch {args.micro_batch_size}, torch threads {torch.get_num_threads()}")
    print(f"decoder tokens per step: {full_tokens} full, {once_tokens} prompt-once "
          f"({full_tokens / once_tokens:.1f}x fewer)")
    logp = {once: w.compute_logp(batch) for once, w in workers.items()}
    diff = max(abs(a - b) for ra, rb in zip(logp[False], logp[True]) for a, b in zip(ra, rb))
    print(f"max |logp(prompt_once) - logp(full)| on this batch: {diff:.2e}")
    res = interleaved_train_steps(workers, batch, steps=args.steps)
    for once in (False, True):
        print(f"prompt_once={str(once):5s}: step median {res[once]['median_s']:.3f} s (min {res[once]['min_s']:.3f} s)"
              f", loss {res[once]['metrics']['train/loss']:+.6f}")
    print(f"speedup full / prompt-once: {res[False]['median_s'] / res[True]['median_s']:.2f}x (median step time), "
          f"{res[False]['min_s'] / res[True]['min_s']:.2f}x (min step time)")


if __name__ == "__main__":
    main()
