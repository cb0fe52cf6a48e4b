"""Ray cluster helpers: the only place that decides how the driver joins a cluster."""

from __future__ import annotations

import os


def init_ray(*, num_cpus: int | None = None, address: str | None = None) -> None:
    """Join `address` ("auto" or host:port of `ray start --head`), or start a local cluster.

    Locally, Ray's logical CPUs are at least 4 even on a 2-core box: rollout and trainer actors each reserve one
    logical CPU but run one after the other (generate, then train), so oversubscribing the count avoids a scheduling
    deadlock without oversubscribing real work.
    """
    import ray

    if ray.is_initialized():
        return
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "WANDB_SILENT": "true"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
        return
    ray.init(num_cpus=num_cpus or max(4, os.cpu_count() or 1), include_dashboard=False, runtime_env=env,
             log_to_driver=True, configure_logging=True, logging_level="WARNING")
