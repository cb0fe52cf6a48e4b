"""Pure loss and advantage math for omni-rl (no Ray, no vLLM, no config objects).

Modules (import them directly; this package ``__init__`` imports nothing so that ``import omni_rl.algorithms`` stays
free of torch):

- ``omni_rl.algorithms.gspo``: ``gspo_loss`` (GSPO, sequence-level clipped surrogate), ``CLIP_PRESETS``, ``kl_k3``,
  ``overlong_weights``, ``logprob_error_weights``.
- ``omni_rl.algorithms.grpo``: ``grpo_loss`` (GRPO with DAPO's token-level clipped surrogate, clip-higher).
- ``omni_rl.algorithms.advantages``: ``group_advantages`` (GRPO-style group-normalised rewards).
- ``omni_rl.algorithms.mpo``: ``dpo_sigmoid_loss``, ``bco_loss``, ``sft_loss``, ``mpo_loss``, ``bco_delta_update``.
- ``omni_rl.algorithms.normalization``: ``normalized_sum`` (the one place where per-sequence losses become the
  optimizer-step loss; divides by the GLOBAL sequence count).

Every loss returns per-sequence (or per-pair) values and never normalises by the batch; see docs/algorithms.md.
Glossary: ``logp``, ``old_logp``, ``ref_logp``, ``log_ratio``, ``ratio``, ``advantages``, ``mask``, ``eps_low``,
``eps_high``, ``beta``.
"""
