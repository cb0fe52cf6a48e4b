"""Ray cluster / worker-group helpers. Import submodules directly (`omni_rl.distributed.rollout_group`)."""
