"""Ray cluster helpers: how the driver joins a cluster, and placement groups for worker groups.

These are the only places that decide cluster-level Ray settings; worker groups (rollout, trainer) call them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

DRIVER_ENV = {"TOKENIZERS_PARALLELISM": "false", "WANDB_SILENT": "true"}
# Ray deletes out-of-scope objects from the object store in batches, by default once a second. A streamed weight
# refit puts a chunk there every few tens of milliseconds, so with the default a second's worth of chunks (measured:
# 9 chunks, 218 MiB of a 292 MiB model) waits for deletion; every 20 ms it is the ~3 chunks in flight (74 MiB).
# Clusters started with `ray start` take the same setting as RAY_free_objects_period_milliseconds=20 (docs/scaling.md).
SYSTEM_CONFIG = {"free_objects_period_milliseconds": 20}
# Ray gives a new local node a fixed 30 s to register with its GCS and then raises a bare Exception with this text; on
# a loaded 2-core machine (seen: a test suite on both cores plus a training run) the raylet can miss it. Starting the
# local cluster again is safe: nothing ran on it yet.
RAYLET_START_TIMEOUT = "timed out during startup"
LOCAL_START_ATTEMPTS = 3


def init_ray(num_cpus: int | None = None, address: str | None = None) -> None:
    """Join `address` ("auto" or host:port of `ray start --head`; else $RAY_ADDRESS), or start a new local cluster
    (no dashboard).

    A local cluster gets `SYSTEM_CONFIG` (prompt deletion of freed objects). Locally, Ray's logical CPUs are at least 4 even on a 2-core box: rollout and trainer actors each reserve one
    logical CPU but run one after the other (generate, then train), so oversubscribing the count avoids a scheduling
    deadlock without oversubscribing real work. A local node that misses Ray's start-up deadline is started again
    (`LOCAL_START_ATTEMPTS` in all). A no-op when Ray is already initialised.
    """
    import ray

    if ray.is_initialized():
        return
    env = {"env_vars": dict(DRIVER_ENV)}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
        return
    # address="local": a new instance even when another cluster runs on this machine (without it Ray joins the last
    # cluster that `ray start` recorded in /tmp/ray, e.g. another user's or a test's)
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address="local", num_cpus=num_cpus or max(4, os.cpu_count() or 1), include_dashboard=False,
                     runtime_env=env, log_to_driver=True, configure_logging=True, logging_level="WARNING",
                     _system_config=SYSTEM_CONFIG)
            return
        except Exception as e:  # noqa: BLE001 -- Ray raises a bare Exception for this one
            if RAYLET_START_TIMEOUT not in str(e) or attempt == LOCAL_START_ATTEMPTS:
                raise
            log.warning("Ray's local node did not register within Ray's fixed 30 s (a loaded machine); "
                        "starting it again (attempt %d of %d)", attempt + 1, LOCAL_START_ATTEMPTS)
            ray.shutdown()


def cluster_gpus() -> float:
    """GPUs the Ray cluster has in total (0.0 on a CPU-only cluster)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))  # Ray omits the key when there are none


def worker_bundle(num_cpus: float, num_gpus: float, resources: Mapping[str, float] | None = None
                  ) -> dict[str, float]:
    """One worker's placement-group bundle: `{"CPU": num_cpus}` plus `"GPU"` when it uses GPUs, plus custom Ray
    resources (`rollout.resources` / `trainer.resources`, e.g. {"rollout_host": 1} to pin the workers to the nodes
    started with that resource)."""
    return {"CPU": float(num_cpus), **({"GPU": float(num_gpus)} if num_gpus > 0 else {}),
            **{k: float(v) for k, v in (resources or {}).items()}}


def node_id() -> str:
    """The Ray node this process runs on ("" outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def reserve_bundles(bundles: list[dict[str, float]], *, strategy: str, timeout_s: float, name: str) -> Any:
    """Create a placement group of `bundles` and wait until Ray has reserved it; a RuntimeError (saying what was
    asked and what the cluster has free) after `timeout_s` instead of waiting forever."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    pg = placement_group(bundles, strategy=strategy)
    try:
        ray.get(pg.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError as e:
        remove_placement_group(pg)
        raise RuntimeError(f"{name}: could not reserve {len(bundles)} bundle(s) {bundles[0]} ({strategy}) within "
                           f"{timeout_s:.0f}s; free resources: {ray.available_resources()}") from e
    return pg


def in_bundle(pg: Any, index: int) -> Any:
    """Scheduling strategy that places an actor (and the tasks it launches) in bundle `index` of `pg`."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=index,
                                            placement_group_capture_child_tasks=True)


def release_bundles(pg: Any) -> None:
    from ray.util.placement_group import remove_placement_group

    remove_placement_group(pg)
