"""Ray cluster and placement helpers (`ray_utils`): starting or joining Ray, placement-group bundles, node ids. The
worker groups live beside their workers: `omni_rl.rollout.group` and `omni_rl.training.group`."""
