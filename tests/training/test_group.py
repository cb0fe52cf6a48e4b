"""TrainerGroup on a real local Ray cluster: 2 data-parallel actors (gloo) == one in-process worker, also with
several optimizer steps per rollout batch; weights for the refit; checkpoints through the group."""

import pytest
import torch
from training_helpers import text_batch

from omni_rl.models.policy import load_model
from omni_rl.training.worker import TrainerWorker

KW = dict(dtype="float64", lr=1e-2, warmup_steps=1, grad_clip=1.0, micro_batch_size=2, num_threads=1)


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _reference(text_model_path, batch, num_minibatches):
    """The same optimizer steps by hand in-process: old_logp before the first update, global count per step."""
    w = TrainerWorker(text_model_path, **KW)
    if num_minibatches > 1:
        batch = batch.with_old_logp(w.compute_logp(batch))
    for mb in batch.split(num_minibatches):
        w.train_step(mb, global_num_seqs=mb.num_weighted)
    return {w.checkpoint_name(n): p.detach() for n, p in w.model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("num_minibatches", [1, 2])
def test_group_equals_in_process_worker(ray_cluster, text_model_path, tmp_path, num_minibatches):
    from omni_rl.training.group import TrainerGroup

    batch = text_batch(seed=5)
    batch.sequences[3].weight = 0.0
    group = TrainerGroup(text_model_path, num_workers=2, **KW)
    try:
        metrics = group.train(batch, num_minibatches=num_minibatches)
        assert metrics["train/optimizer_steps"] == num_minibatches
        assert metrics["train/num_seqs"] == 9 and metrics["train/num_weighted_seqs"] == 8
        if num_minibatches == 2:  # 2nd step's ratio uses the pre-update policy: != 1
            assert metrics["train/old_logp_s"] > 0 and metrics["train/log_ratio_abs_mean"] > 0
        weights = dict(group.weights())
        expected = _reference(text_model_path, batch, num_minibatches)
        assert set(weights) == set(expected)
        for n, t in expected.items():
            torch.testing.assert_close(weights[n], t, atol=1e-9, rtol=0, msg=n)

        group.save(tmp_path / "ckpt")
        group.train(batch)
        group.load(tmp_path / "ckpt")  # every rank back to the saved state
        assert [i["step"] for i in group.info()] == [num_minibatches] * 2
        group.export_hf(tmp_path / "final")
        exported = load_model(tmp_path / "final", "float64")
        for n, p in exported.named_parameters():
            torch.testing.assert_close(p, expected[n], atol=1e-9, rtol=0, msg=n)
    finally:
        group.shutdown()


def test_unknown_worker_kwarg_fails_fast(text_model_path):
    from omni_rl.training.group import TrainerGroup

    with pytest.raises(TypeError):
        TrainerGroup(text_model_path, num_workers=1, learning_rate=1e-5)
