"""TrainerGroup on a real local Ray cluster: 2 data-parallel actors (gloo) == one in-process worker, also with
several optimizer steps per rollout batch; weights for the refit; checkpoints through the group."""

import pytest
import torch
from training_helpers import OMNI, TEXT, text_batch

from omni_rl.models.policy import load_model
from omni_rl.training.worker import TrainerWorker

KW = dict(dtype="float64", lr=1e-2, warmup_steps=1, grad_clip=1.0, micro_batch_size=2, num_threads=1)


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _reference(text_model_path, batch, num_minibatches):
    """The same optimizer steps by hand in-process: old_logp before the first update, global count per step.
    2 ranks: shards 0..4 | 5..8; with 2 mini-batches each rank halves its shard -> steps {0,1,2,5,6}, {3,4,7,8}."""
    w = TrainerWorker(text_model_path, family=TEXT, **KW)
    if num_minibatches > 1:
        batch = batch.with_old_logp(w.compute_logp(batch))
    steps = [range(9)] if num_minibatches == 1 else [[0, 1, 2, 5, 6], [3, 4, 7, 8]]
    for idx in steps:
        mb = batch.select(idx)
        w.train_step(mb, global_num_seqs=mb.num_weighted)
    return {w.checkpoint_name(n): p.detach() for n, p in w.model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("num_minibatches", [1, 2])
def test_group_equals_in_process_worker(ray_cluster, text_model_path, tmp_path, num_minibatches):
    from omni_rl.training.group import TrainerGroup

    batch = text_batch(seed=5)
    batch.sequences[3].weight = 0.0
    group = TrainerGroup(text_model_path, family=TEXT, num_workers=2, **KW)
    try:
        metrics = group.train(batch, num_minibatches=num_minibatches)
        assert metrics["train/optimizer_steps"] == num_minibatches
        assert metrics["train/num_seqs"] == 9 and metrics["train/num_weighted_seqs"] == 8
        if num_minibatches == 2:  # 2nd step's ratio uses the pre-update policy: != 1
            assert metrics["train/log_ratio_abs_mean"] > 0
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
        exported = load_model(tmp_path / "final", "float64", family=TEXT)
        for n, p in exported.named_parameters():
            torch.testing.assert_close(p, expected[n], atol=1e-9, rtol=0, msg=n)
    finally:
        group.shutdown()


def test_unknown_worker_kwarg_fails_fast(text_model_path):
    from omni_rl.training.group import TrainerGroup

    with pytest.raises(TypeError):
        TrainerGroup(text_model_path, family=TEXT, warmup_steps=0, num_workers=1, learning_rate=1e-5)


@pytest.mark.slow
def test_group_omni_one_worker(ray_cluster, omni_model_path):
    """One train call on the tiny omni model (image + audio prompts, G=3) through a Ray actor: finite metrics, one
    encoder forward per unique media prompt; weights() carries exactly the checkpoint's safetensors names."""
    import math

    from safetensors import safe_open
    from training_helpers import mm_prompt, random_sequences

    from omni_rl.models.policy import load_processor
    from omni_rl.training.batch import TrainBatch
    from omni_rl.training.group import TrainerGroup

    proc = load_processor(omni_model_path, OMNI)
    batch = TrainBatch(prompts=[mm_prompt(proc, "image", 0), mm_prompt(proc, "image+audio", 1)],
                       sequences=random_sequences(2, 3, seed=2))
    group = TrainerGroup(omni_model_path, family=OMNI, warmup_steps=0, num_workers=1, lr=1e-3, micro_batch_size=6, num_threads=1,
                         freeze={"audio_encoder": True, "router": True})
    try:
        m = group.train(batch)
        for key in ("train/loss", "loss/clip_frac", "loss/clip_frac_low", "loss/clip_frac_high", "loss/ratio_mean",
                    "train/grad_norm", "train/lr", "train/masked_seqs", "encoder/forwards", "train/tokens"):
            assert math.isfinite(m[key]), key
        assert m["encoder/forwards"] == 2 and m["train/grad_norm"] > 0
        names = [n for n, _ in group.weights()]
        with safe_open(f"{omni_model_path}/model.safetensors", "pt") as f:
            assert sorted(names) == sorted(f.keys())
    finally:
        group.shutdown()


def test_dead_actor_names_the_rank(ray_cluster, text_model_path):
    import ray

    from omni_rl.training.group import TrainerGroup

    group = TrainerGroup(text_model_path, family=TEXT, warmup_steps=0, num_workers=1, num_threads=1)
    try:  # the shape shared with RolloutGroup, then the kill
        assert group.num_workers == len(group.workers) == 1
        assert group.node_ids == [ray.get_runtime_context().get_node_id()]  # the one local node
        assert 0 < group.start_seconds < 600
        ray.kill(group.workers[0], no_restart=True)
        with pytest.raises(RuntimeError, match="trainer rank 0 died"):
            group.weights()
    finally:
        group.workers = []


def test_rollout_and_trainer_groups_share_one_shape():
    """Both groups take the same construction keywords and set the same attributes (read from their source: no Ray
    needed); `test_dead_actor_names_the_rank` and tests/rollout/test_rollout_group.py check the values."""
    import ast
    import inspect

    from omni_rl.rollout.group import RolloutGroup
    from omni_rl.training.group import TrainerGroup

    shared = {"model_path", "num_workers", "num_cpus_per_worker", "num_gpus_per_worker", "resources"}
    for cls in (RolloutGroup, TrainerGroup):
        assert shared <= set(inspect.signature(cls).parameters), cls.__name__
        tree = ast.parse(inspect.getsource(cls))
        assigned = {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
        members = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert {"num_workers", "workers", "start_seconds"} <= assigned, cls.__name__
        assert "node_ids" in assigned | members and "shutdown" in members, cls.__name__
