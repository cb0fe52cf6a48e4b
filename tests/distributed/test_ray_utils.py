"""Ray helpers and the pure pieces of RolloutGroup (sharding, weight chunking); Ray-level pieces on a real local
Ray cluster."""

from __future__ import annotations

import pytest
import torch

from omni_rl.distributed.ray_utils import worker_bundle
from omni_rl.rollout.group import as_chunks, shard_indices


def test_shard_indices_contiguous_and_balanced():
    assert shard_indices(5, 2) == [[0, 1, 2], [3, 4]]
    assert shard_indices(2, 3) == [[0], [1], []]
    assert shard_indices(0, 2) == [[], []]
    assert sum(shard_indices(17, 4), []) == list(range(17))


def test_as_chunks_cuts_flat_lists_by_bytes_and_keeps_chunk_lists():
    w = [("a", torch.zeros(4)), ("b", torch.zeros(4)), ("c", torch.zeros(16)), ("d", torch.zeros(1))]
    # float32: a 16 B, b 16 B, c 64 B, d 4 B; limit 32 B -> [a, b], [c] (too big, alone), [d]
    assert [[n for n, _ in c] for c in as_chunks(w, 32)] == [["a", "b"], ["c"], ["d"]]
    assert [[n for n, _ in c] for c in as_chunks(w, 1 << 20)] == [["a", "b", "c", "d"]]
    chunks = [w[:1], w[1:]]
    assert as_chunks(chunks, 1) == chunks
    assert as_chunks([], 32) == []


def test_worker_bundle():
    assert worker_bundle(1, 0) == {"CPU": 1.0}
    assert worker_bundle(2, 1) == {"CPU": 2.0, "GPU": 1.0}


@pytest.mark.slow
def test_init_ray_local_placement_and_timeout():
    import ray

    from omni_rl.distributed.ray_utils import cluster_gpus, init_ray, release_bundles, reserve_bundles

    init_ray(num_cpus=3)
    try:
        init_ray(num_cpus=8)  # already initialised: no-op
        assert ray.cluster_resources()["CPU"] == 3.0 and cluster_gpus() == 0.0
        pg = reserve_bundles([worker_bundle(1, 0)] * 2, strategy="PACK", timeout_s=30, name="test")
        assert ray.available_resources().get("CPU", 0.0) == 1.0
        with pytest.raises(RuntimeError, match=r"could not reserve 2 bundle\(s\) \{'CPU': 1.0\}"):
            reserve_bundles([worker_bundle(1, 0)] * 2, strategy="PACK", timeout_s=1, name="test")
        release_bundles(pg)
    finally:
        ray.shutdown()


def test_worker_arg_falls_back_to_the_worker_signature():
    from omni_rl.rollout.group import worker_arg

    assert worker_arg({"tensor_parallel_size": 4}, "tensor_parallel_size") == 4
    assert worker_arg({}, "tensor_parallel_size") == 1 and worker_arg({}, "kv_cache_gib") == 1


def test_rollout_modules_import_no_ray_vllm_torch():
    """The driver imports the group and the worker class without loading Ray / vLLM / torch (they load on use)."""
    import json
    import subprocess
    import sys

    code = ("import sys, json, omni_rl.rollout.group, omni_rl.rollout.worker, omni_rl.rollout.dedup\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(json.loads(out.stdout.splitlines()[-1])) & {"ray", "vllm", "torch"}


def test_local_start_is_retried_after_the_raylet_start_timeout(monkeypatch):
    """Ray's fixed 30 s raylet registration deadline, missed on a loaded machine, starts the local node again; any
    other failure, and the last attempt's, is raised. (ray.init stands in for a start that fails: the retry logic is
    what is under test.)"""
    import ray

    from omni_rl.distributed import ray_utils

    timeout = Exception("The current node timed out during startup. This could happen because some of the raylet "
                        "failed to startup or the GCS has become overloaded.")
    calls, shutdowns = [], []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(1))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def init(outcomes):
        def fake(**kwargs):
            calls.append(kwargs["address"])
            out = outcomes.pop(0)
            if out is not None:
                raise out
        return fake

    monkeypatch.setattr(ray, "init", init([timeout, timeout, None]))
    ray_utils.init_ray(num_cpus=4)
    assert calls == ["local"] * 3 and len(shutdowns) == 2

    calls.clear(), shutdowns.clear()
    monkeypatch.setattr(ray, "init", init([timeout] * 3))
    with pytest.raises(Exception, match="timed out during startup"):
        ray_utils.init_ray(num_cpus=4)
    assert len(calls) == ray_utils.LOCAL_START_ATTEMPTS == 3 and len(shutdowns) == 2

    calls.clear(), shutdowns.clear()
    monkeypatch.setattr(ray, "init", init([ValueError("bad runtime_env")]))
    with pytest.raises(ValueError, match="bad runtime_env"):
        ray_utils.init_ray(num_cpus=4)
    assert len(calls) == 1 and not shutdowns
