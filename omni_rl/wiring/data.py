"""A stage's rows (`build_data`: loaded, validated, sampled by the mixture) and their rendering through the
policy's processor (`render_sample`, also what the offline jobs render with)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from omni_rl.config.schema import OmniRLConfig
from omni_rl.data.mixture import MixtureSampler
from omni_rl.data.types import Prompt, Sample
from omni_rl.wiring.cache import suite_path
from omni_rl.wiring.policy import Policy
from omni_rl.wiring.run import Run

# The model and data modules are imported inside the functions: a stage builds its policy and data in a background
# thread while Ray starts (`omni_rl.controller.rl`), so their import time overlaps Ray's start.


@dataclass
class Data:
    samples: list[Sample]
    sampler: MixtureSampler
    policy: Policy
    cfg: OmniRLConfig
    counts: dict[str, int]
    split: str = "train"  # "train" | "eval": prefixes vLLM media cache keys, so equal row ids never share an entry
    _cache: "OrderedDict[int, Prompt]" = field(default_factory=OrderedDict)
    cache_size: int = 256

    def render(self, index: int) -> Prompt:
        """Render row `index` through the model's processor ONCE (LRU-cached across steps)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        prompt = render_sample(self.samples[index], self.policy, self.cfg, key_prefix=self.split)
        self._cache[index] = prompt
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return prompt


def render_sample(sample: Sample, policy: Policy, cfg: OmniRLConfig, *, key_prefix: str) -> Prompt:
    """`sample` through the policy's processor, with stable per-media cache keys for vLLM
    (`<key_prefix>:<row id>/<kind><i>`; the rollout worker appends the policy version)."""
    from omni_rl.data.render import render_prompt

    prompt = render_prompt(sample, policy.processor, enable_thinking=cfg.model.enable_thinking,
                           video_fps=cfg.data.video_fps, video_max_frames=cfg.data.video_max_frames,
                           audio_in_video_key=policy.family.audio_in_video_key)
    mm = prompt.vllm_inputs.get("multi_modal_data") or {}
    prompt.vllm_inputs["multi_modal_uuids"] = {
        kind: [f"{key_prefix}:{sample.id}/{kind}{i}" for i in range(len(items) if isinstance(items, list) else 1)]
        for kind, items in mm.items()}
    return prompt


def build_data(cfg: OmniRLConfig, run: Run, policy: Policy, *, split: str = "train") -> Data:
    """Load `data.path` (or generate the synthetic suite), write rejects, and report rows in = usable + rejected.
    `split="eval"`: the held-out set (`data.eval_path`, or the held-out synthetic suite); rejects in eval_rejects.jsonl."""
    from omni_rl.data.loading import load_samples
    from omni_rl.verifiers import verifier_exists

    given = cfg.data.eval_path if split == "eval" else cfg.data.path
    path = Path(given) if given is not None else suite_path(cfg, held_out=split == "eval")
    rejects = run.dir / ("eval_rejects.jsonl" if split == "eval" else "rejects.jsonl")
    result = load_samples(path, known_verifiers=verifier_exists, rejects_path=rejects)
    counts = dict(result.counts)
    run.console.print(f"{split} data {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + (f" (reasons in {rejects})" if result.rejects else ""))
    if not result.samples:
        raise ValueError(f"no usable rows in {path}; see {rejects}")
    sampler = MixtureSampler([s.source for s in result.samples], weights=dict(cfg.data.mixture) or None,
                             seed=cfg.data.seed)
    return Data(samples=result.samples, sampler=sampler, policy=policy, cfg=cfg, counts=counts, split=split,
                cache_size=max(256, len(result.samples)) if split == "eval" else 256)
