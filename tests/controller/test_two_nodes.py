"""Two Ray nodes on this box (`ray.cluster_utils.Cluster`: two raylets, each with its own object store): the image
stage runs with its vLLM rollout worker on one node and its 2 trainer ranks on the other, chosen by custom Ray
resources (`rollout.resources` / `trainer.resources`), exactly as on a real cluster started with
`ray start --resources=...`. Every refit sends the weights from the trainer node to the rollout node (and the
trainer ranks all-reduce across processes on theirs): trainer and vLLM log-probs still agree after each one. The
trainer scores with `trainer.prompt_once=true` (each prompt through the decoder once per micro-batch), so that
agreement also checks the prompt-once forward against vLLM."""

from __future__ import annotations

import json

import pytest

from stage_runs import metrics, run_stage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 4, "resources": {"rollout_host": 4}})
    cluster.add_node(num_cpus=4, resources={"trainer_host": 4})
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


def test_image_rl_with_rollout_and_trainer_on_different_nodes(two_nodes, tmp_path):
    out = run_stage(tmp_path / "run", "stage=image_rl", "run.steps=3", "run.prompts_per_step=4", "rollout.n=4",
                    "run.eval_every=0", "trainer.num_workers=2", "trainer.prompt_once=true",
                    "+rollout.resources.rollout_host=1", "+trainer.resources.trainer_host=1",
                    f"ray_address={two_nodes}", "logging.plot=false", "verify.num_workers=1")
    placement = json.loads((out / "placement.json").read_text())
    assert len(placement["rollout"]) == 1 and len(placement["trainer"]) == 2
    assert len(set(placement["trainer"])) == 1  # both ranks on the trainer node
    assert placement["rollout"][0] not in placement["trainer"]  # ... and the vLLM worker on the other one
    rows = metrics(out)
    assert [r["step"] for r in rows] == [0, 1, 2]
    trained = [r for r in rows if "train/grad_norm" in r]
    assert trained, "no step trained"
    for r in trained:
        assert r["train/logprob_abs_diff_mean"] < 1e-4  # the refit crossed nodes intact
