"""omni-rl: RL post-training for omni-modal models (MPO + GSPO curriculum on Ray + vLLM).

Importing the package is cheap: subpackages load torch / ray / vllm only when their modules are imported.
"""

__version__ = "0.1.0"
