#!/usr/bin/env python
"""Trainer step time with trainer.packing on vs off, on a micro-batch whose sequence lengths differ.

packing=False right-pads every sequence of a micro-batch to the longest one. packing=True packs the sequences into
as few rows of that length as fit (first fit, longest first) with position ids that restart per sequence, so the
decoder sees far fewer padding tokens; attention stays within each sequence (transformers' packed-sequence mask).
The two give the same log-probs and gradients (tests/training/test_forward.py, float64); this prints the decoder
tokens and the step time of each, side by side in one run (steps alternate between the two workers), and the largest
log-prob difference between them on the benchmark batch.

The model is the text family's Qwen3-style architecture at a chosen size (random weights, built offline and cached
under --out). Default batch: 4 prompts of 64 / 128 / 256 / 1,024 tokens, G = 4 responses each of 8-200 tokens, one
micro-batch of 16 (a mix like a text + long-context curriculum step).

    .venv/bin/python scripts/bench_packing.py
    .venv/bin/python scripts/bench_packing.py --prompt-lens 100 100 100 2000 --response-max 400
"""

from __future__ import annotations

import argparse


def make_batch(*, prompt_lens: list[int], group: int, response_min: int, response_max: int, vocab: int, seed: int):
    """One random prompt per length in `prompt_lens`, `group` random responses of response_min..response_max tokens."""
    import torch

    from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence

    g = torch.Generator().manual_seed(seed)
    prompts, seqs = [], []
    for p, n in enumerate(prompt_lens):
        prompts.append(TrainPrompt(prompt_ids=torch.randint(20, vocab, (n,), generator=g).tolist(), uid=str(p)))
        for _ in range(group):
            r = int(torch.randint(response_min, response_max + 1, (1,), generator=g))
            seqs.append(TrainSequence(prompt_index=p, response_ids=torch.randint(20, vocab, (r,), generator=g).tolist(),
                                      advantage=float(torch.randn((), generator=g))))
    return TrainBatch(prompts=prompts, sequences=seqs)


def main() -> None:
    from omni_rl.bench.models import add_step_bench_args, interleaved_train_steps, print_step_times, step_bench_workers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-lens", type=int, nargs="+", default=[64, 128, 256, 1024], help="one prompt per length")
    ap.add_argument("--group", type=int, default=4, help="rollouts per prompt (G)")
    ap.add_argument("--response-min", type=int, default=8)
    ap.add_argument("--response-max", type=int, default=200)
    add_step_bench_args(ap, out="outputs/bench_packing")
    args = ap.parse_args()

    import torch

    from omni_rl.training.forward import pack_rows

    workers = step_bench_workers(args, {p: {"packing": p} for p in (False, True)})
    vocab = workers[False].model.config.vocab_size
    batch = make_batch(prompt_lens=args.prompt_lens, group=args.group, response_min=args.response_min,
                       response_max=args.response_max, vocab=vocab, seed=args.seed)
    n_params = sum(p.numel() for p in workers[False].model.parameters())
    padded = packed = real = 0
    for start in range(0, len(batch.sequences), args.micro_batch_size):
        lengths = [len(batch.prompts[s.prompt_index].prompt_ids) + len(s.response_ids)
                   for s in batch.sequences[start:start + args.micro_batch_size]]
        padded += len(lengths) * max(lengths)
        packed += len(pack_rows(lengths, max(lengths))) * max(lengths)
        real += sum(lengths)
    print(f"model: text family at hidden {args.hidden}, {args.layers} layers ({n_params / 1e6:.1f}M params); "
          f"prompts of {args.prompt_lens} tokens x G={args.group}, responses {args.response_min}-{args.response_max} "
          f"tokens, micro-batch {args.micro_batch_size}, torch threads {torch.get_num_threads()}")
    print(f"decoder tokens per step: {padded} padded, {packed} packed ({real} real: padding {1 - real / padded:.0%} "
          f"vs {1 - real / packed:.0%})")
    logp = {p: w.compute_logp(batch) for p, w in workers.items()}
    diff = max(abs(a - b) for ra, rb in zip(logp[False], logp[True]) for a, b in zip(ra, rb))
    print(f"max |logp(packed) - logp(padded)| on this batch: {diff:.2e}")
    print_step_times(interleaved_train_steps(workers, batch, steps=args.steps), "packing", False, True)


if __name__ == "__main__":
    main()
