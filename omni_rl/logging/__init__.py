"""Metrics sinks (jsonl, wandb), progress display and plots. Import submodules directly."""
