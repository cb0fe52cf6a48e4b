"""A byte-level BPE tokenizer trained locally (no hub) + a ChatML chat template with a `<think>` reasoning mode."""

from __future__ import annotations

from pathlib import Path

CHAT_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Named multimodal tokens of the Qwen2.5-Omni / Qwen2.5-VL processors (their processors look them up by name).
MM_SPECIAL = ["<|vision_bos|>", "<|vision_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|audio_bos|>", "<|audio_eos|>",
              "<|AUDIO|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
              "<|audio_start|>", "<|audio_end|>", "<|AUDIO|>"]

# Rendered with `enable_thinking` (default True): the assistant turn opens plain and the model writes
# `<think> ... </think>` itself; with enable_thinking=False an empty think block is injected (Qwen3 convention).
# Media parts become the processor's placeholder strings; the processor expands them to the feature count.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] == 'image' or part['type'] == 'image_url' -%}{{ '<|vision_bos|><|IMAGE|><|vision_eos|>' }}"
    "{%- elif part['type'] == 'video' -%}{{ '<|vision_bos|><|VIDEO|><|vision_eos|>' }}"
    "{%- elif part['type'] == 'audio' -%}{{ '<|audio_bos|><|AUDIO|><|audio_eos|>' }}"
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


def train_tokenizer(out_dir: Path, *, vocab_size: int = 1024, multimodal: bool = False):
    """Train, wrap as a transformers fast tokenizer with the chat template, save to `out_dir`, return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = CHAT_SPECIAL + (list(dict.fromkeys(MM_SPECIAL)) if multimodal else [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast
