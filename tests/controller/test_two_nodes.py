"""Two Ray nodes on this box (`ray.cluster_utils.Cluster`: two raylets, each with its own object store): the image
stage runs with its vLLM rollout worker on one node and its 2 trainer ranks on the other, chosen by custom Ray
resources (`rollout.resources` / `trainer.resources`), exactly as on a real cluster started with
`ray start --resources=...`. Every refit sends the weights from the trainer node to the rollout node (and the
trainer ranks all-reduce across processes on theirs): trainer and vLLM log-probs still agree after each one. The
trainer scores with `trainer.prompt_once=true` (each prompt through the decoder once per micro-batch), so that
agreement also checks the prompt-once forward against vLLM. Then `omni-rl filter` spread over two nodes loses one of
them part-way and still scores every row."""

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


def test_filter_over_two_nodes_survives_the_death_of_one(tmp_path):
    """`omni-rl filter` with one rollout worker on each of two nodes (`rollout.placement_strategy=SPREAD`). Once a
    few prompts are scored, the second node is removed (its raylet and every process on it killed, as when a
    machine fails). The worker it hosted is replaced, its bundle moves to the surviving node, its prompts are
    re-sent, and the job finishes with every row scored. The report gives where the workers started and the media
    bytes sent to each node."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from ray.cluster_utils import Cluster

    from omni_rl.config import compose_config
    from omni_rl.wiring.cache import suite_path

    suite = suite_path(compose_config(["stage=image_rl"]))
    rows = [json.loads(line) for line in suite.read_text().splitlines()][:40]
    for r in rows:  # absolute media paths: the rows file lives elsewhere
        for part in r["messages"][0]["content"] if isinstance(r["messages"][0]["content"], list) else ():
            if part.get("type") == "image":
                part["image"] = str((suite.parent / part["image"]).resolve())
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 4})
    second = cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()
    out = tmp_path / "filter"
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "omni_rl.cli", "filter", "stage=image_rl", f"data.path={data}",
           f"run.output_dir={out}", f"ray_address={cluster.address}", "rollout.num_workers=2",
           "rollout.placement_strategy=SPREAD", "filter.prompts_per_call=2", "filter.calls_per_worker=1",
           "logging.progress=false", "logging.wandb_mode=disabled", "verify.num_workers=1"]
    log = tmp_path / "filter.log"
    try:
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, cwd=root, stdout=f, stderr=subprocess.STDOUT,
                                    env={**os.environ, "WANDB_MODE": "disabled"}, start_new_session=True)
            scores, deadline, seen = out / "scores.jsonl", time.monotonic() + 600, 0
            while time.monotonic() < deadline and proc.poll() is None:
                seen = len(scores.read_text().splitlines()) if scores.exists() else 0
                if seen >= 4:
                    cluster.remove_node(second, allow_graceful=False)
                    break
                time.sleep(0.05)
            code = proc.wait(timeout=900)
    finally:
        cluster.shutdown()
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert 4 <= seen < len(rows), seen  # the node died part-way
    report = json.loads((out / "report.json").read_text())
    t = report["totals"]
    assert t["rows_in"] == len(rows) == t["kept"] + t["filtered_out"] and t["rejected"] == 0 and t["pending"] == 0
    ids = [json.loads(line)["id"] for line in (out / "scores.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # every row scored once
    (session,) = report["rollout"]
    assert len(set(session["rollout_nodes"])) == 2  # one worker per node
    assert session["replaced_workers"] >= 1 and "replaced (died" in text
    by_node = session["media_bytes_by_node"]
    assert set(session["rollout_nodes"]) <= set(by_node) and all(v > 0 for v in by_node.values())
