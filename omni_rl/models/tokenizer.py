"""A byte-level BPE tokenizer trained locally (no hub) + a ChatML chat template with a `<think>` reasoning mode.

Each multimodal family's HF processor looks its placeholder tokens up by *name* on the tokenizer
(`tokenizer.image_token`, `tokenizer.audio_bos_token`, ...; `ModelFamily.named_tokens`), so they are registered as
`model_specific_special_tokens`, and the chat template writes the family's own placeholder strings for media parts
(the processor then expands each placeholder to the number of feature tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Every multimodal family gets the same special-token ids (one list, fixed order), whichever names it uses.
MM_SPECIAL = ["<|vision_bos|>", "<|vision_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|audio_bos|>", "<|audio_eos|>",
              "<|AUDIO|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
              "<|audio_start|>", "<|audio_end|>"]


def chat_template(family: str) -> str:
    """ChatML with a reasoning mode. With `enable_thinking` (default True) the assistant turn opens plain and the
    model writes `<think> ... </think>` itself; with enable_thinking=False an empty think block is injected (Qwen3
    convention). Media parts (`image`/`image_url`, `video`, `audio`) become the family's placeholder strings
    (`ModelFamily.media_strings`)."""
    from omni_rl.models.families import get_family

    m = get_family(family).media_strings
    return (
        "{%- for message in messages -%}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
        f"{{%- elif part['type'] == 'image' or part['type'] == 'image_url' -%}}{{{{ '{m['image']}' }}}}"
        f"{{%- elif part['type'] == 'video' -%}}{{{{ '{m['video']}' }}}}"
        f"{{%- elif part['type'] == 'audio' -%}}{{{{ '{m['audio']}' }}}}"
        "{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{{ '<|im_end|>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
        "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\\n\\n</think>\\n\\n' }}"
        "{%- endif -%}{%- endif -%}"
    )


def corpus_lines() -> list[str]:
    """Text the BPE merges are learned from: the synthetic suite's vocabulary, digits, LaTeX-ish answers."""
    from omni_rl.models.vocab import CORPUS_WORDS

    lines = []
    for i in range(400):
        lines.append(f"What is {i % 37} + {i % 23}? Think, then answer in \\boxed{{{i % 37 + i % 23}}}.")
    lines += [" ".join(CORPUS_WORDS[i:i + 12]) for i in range(0, len(CORPUS_WORDS), 6)]
    lines += ["<think> The answer is </think> \\boxed{A} \\boxed{B} \\boxed{C} \\boxed{D} (x, y) [x, y] <point>"]
    return lines * 3


def train_tokenizer(out_dir: Path, *, vocab_size: int = 1024, family: str = "text") -> Any:
    """Train, wrap as a transformers fast tokenizer with the family's chat template and named multimodal tokens,
    save to `out_dir`, return it. Deterministic (BPE training on a fixed corpus)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    from omni_rl.models.families import get_family

    fam = get_family(family)
    specials = CHAT_SPECIAL + (MM_SPECIAL if fam.mm_special_tokens else []) + list(fam.extra_special_tokens)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    named = fam.named_tokens
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None,
                                   **({"model_specific_special_tokens": dict(named)} if named else {}))
    fast.chat_template = chat_template(family)
    fast.save_pretrained(out_dir)
    return fast
