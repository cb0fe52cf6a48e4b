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
    from omni_rl.bench.models import add_step_bench_args, interleaved_train_steps, print_step_times, step_bench_workers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=1, help="unique prompts per step")
    ap.add_argument("--group", type=int, default=16, help="rollouts per prompt (G)")
    ap.add_argument("--prompt-len", type=int, default=2000, help="prompt tokens")
    ap.add_argument("--response-len", type=int, default=40, help="response tokens per rollout")
    add_step_bench_args(ap, out="outputs/bench_prompt_once")
    args = ap.parse_args()

    import torch

    workers = step_bench_workers(args, {once: {"prompt_once": once} for once in (False, True)})
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
    print_step_times(interleaved_train_steps(workers, batch, steps=args.steps), "prompt_once", False, True)


if __name__ == "__main__":
    main()
