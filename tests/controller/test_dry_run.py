"""`run.dry_run=true`: every shipped stage, curriculum and model preset is composed and checked without loading
weights; problems (unknown checkpoint, TP not dividing the heads, a placement that does not fit, bad data) are rows
with what to do, and the exit code is 2.

The model presets are checked against a real two-node Ray cluster that declares 8 GPUs per node
(`ray.cluster_utils.Cluster`; Ray schedules logical resources, so this machine can host it), with a checkpoint dir
whose config.json is the architecture's transformers defaults (weights are never read by a dry run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from omni_rl.config import compose_config
from omni_rl.controller.dry_run import dry_run, lm_config, pack

ROOT = Path(__file__).resolve().parents[2]
PRESETS = {  # preset -> (transformers config class, architecture); every file in configs/model/ must be listed
    "qwen2_5_vl_3b": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"),
    "qwen2_5_vl_7b": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"),
    "qwen2_5_omni_3b": ("Qwen2_5OmniConfig", "Qwen2_5OmniForConditionalGeneration"),
    "qwen2_5_omni_7b": ("Qwen2_5OmniConfig", "Qwen2_5OmniForConditionalGeneration"),
    "nemotron_3_nano_omni_30b_a3b": ("NemotronH_Omni_Reasoning_V3_Config", "NemotronH_Nano_Omni_Reasoning_V3"),
}
FAMILY_OF = {"Qwen2_5_VLForConditionalGeneration": "vl", "Qwen2_5OmniForConditionalGeneration": "omni",
             "NemotronH_Nano_Omni_Reasoning_V3": "nemotron_omni"}


def _checkpoint(tmp: Path, config_class: str, arch: str) -> Path:
    import transformers

    cfg = getattr(transformers, config_class)()
    cfg.architectures = [arch]
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "config.json").write_text(cfg.to_json_string())
    (tmp / "model.safetensors").write_bytes(b"")  # a dry run lists weight files, it never reads them
    (tmp / "tokenizer_config.json").write_text("{}")
    return tmp


def _cli(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", *overrides, "run.dry_run=true"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def _run(overrides: list[str]) -> tuple[int, str]:
    console = Console(record=True, width=250, file=open(os.devnull, "w"))
    code = dry_run(compose_config(overrides), console)
    return code, console.export_text()


def test_presets_listed_here_are_the_shipped_ones():
    assert sorted(PRESETS) == sorted(p.stem for p in (ROOT / "configs" / "model").glob("*.yaml"))


@pytest.mark.parametrize("stage", sorted(p.stem for p in (ROOT / "configs" / "stage").glob("*.yaml")))
def test_every_shipped_stage_dry_runs_on_this_machine(stage):
    code, out = _run([f"stage={stage}"])
    assert code == 0, out
    assert "tiny offline" in out and "this machine (local Ray cluster)" in out
    assert "checks passed" in out and "problem" not in out


def test_curriculum_dry_run_checks_every_stage():
    res = _cli("curriculum=nemotron_omni")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "curriculum nemotron_omni: 5 of 5 stages passed the dry run" in res.stdout
    assert "1_mpo/final (the previous stage's checkpoint)" in res.stdout  # text_rl_1 starts from MPO's final/
    for stage in ("mpo", "text_rl_1", "image_rl", "omni_rl", "text_rl_2"):
        assert f"dry run of {stage}" in res.stdout


@pytest.fixture(scope="module")
def gpu_cluster():
    """Two Ray nodes with 8 CPUs and 8 GPUs each (logical resources)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 8, "num_gpus": 8})
    cluster.add_node(num_cpus=8, num_gpus=8)
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


@pytest.mark.slow
def test_every_model_preset_dry_runs_on_a_gpu_cluster(gpu_cluster, tmp_path):
    for preset, (config_class, arch) in PRESETS.items():
        ckpt = _checkpoint(tmp_path / preset, config_class, arch)
        res = _cli("stage=image_rl", f"model={preset}", f"model.path={ckpt}", f"ray_address={gpu_cluster}")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        assert f"{arch} -> family {FAMILY_OF[arch]}" in res.stdout
        assert f"Ray cluster {gpu_cluster}: 2 node(s), 16 CPU, 16 GPU" in res.stdout
        assert "8 of 8 checks passed" in res.stdout

    # a run without ray_address starts its own local cluster, never joins this one (Ray would join the cluster
    # recorded in /tmp/ray by default): no GPUs there
    probe = subprocess.run([sys.executable, "-c", "from omni_rl.distributed.ray_utils import init_ray; init_ray(); "
                            "import ray; print('GPUs', ray.cluster_resources().get('GPU', 0))"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert probe.stdout.strip().splitlines()[-1] == "GPUs 0", probe.stdout + probe.stderr[-2000:]

    # 3 rollout workers x TP 8 + 4 trainer ranks = 28 GPUs > 16: the run is refused, naming what does not fit
    ckpt = tmp_path / "qwen2_5_vl_7b"
    res = _cli("stage=image_rl", "model=qwen2_5_vl_7b", f"model.path={ckpt}", f"ray_address={gpu_cluster}",
               "rollout.tensor_parallel_size=8", "rollout.num_workers=3")
    assert res.returncode == 2
    assert "the run asks 7 CPU, 28 GPU (3 rollout worker(s) x TP 8, 4 trainer rank(s))" in res.stdout
    assert "does not fit: rollout 2, trainer 0, trainer 1, trainer 2, trainer 3" in res.stdout


def test_unknown_checkpoint_and_tp_that_does_not_divide_the_heads(tmp_path):
    unknown = tmp_path / "llava"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"architectures": ["LlavaForConditionalGeneration"]}))
    code, out = _run(["stage=image_rl", f"model.path={unknown}"])
    assert code == 2
    assert "architecture 'LlavaForConditionalGeneration' (model_type None) is not supported" in out

    ckpt = _checkpoint(tmp_path / "vl", "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration")  # 64 heads, 8 KV
    code, out = _run(["stage=image_rl", f"model.path={ckpt}", "rollout.tensor_parallel_size=3",
                      "rollout.max_model_len=65536"])
    assert code == 2
    assert "rollout.tensor_parallel_size=3, 64 attention heads / 8 KV heads: vLLM needs the heads divisible" in out
    assert "rollout.max_model_len=65536 vs max_position_embeddings=32768: lower rollout.max_model_len" in out


def test_data_rows_are_loaded_and_counted(tmp_path):
    rows = tmp_path / "rows.jsonl"
    good = {"id": "a", "messages": [{"role": "user", "content": "1+1?"}], "verifier": "mathruler", "answer": "2"}
    rows.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "verifier": "nope"}) + "\n{oops\n")
    code, out = _run(["stage=text_rl_1", f"data.path={rows}"])
    assert code == 0, out
    assert f"{rows}: rows_in 3, usable 1, rejected 2" in out
    code, out = _run(["stage=text_rl_1", f"data.path={tmp_path / 'missing.jsonl'}"])
    assert code == 2 and f"{tmp_path / 'missing.jsonl'} does not exist" in out


def test_lm_config_finds_the_language_model_part():
    assert lm_config({"thinker_config": {"text_config": {"num_attention_heads": 28}},
                      "num_attention_heads": 1}) == {"num_attention_heads": 28}
    assert lm_config({"text_config": {"num_attention_heads": 16}}) == {"num_attention_heads": 16}
    assert lm_config({"num_attention_heads": 9, "hidden_size": 4}) == {"num_attention_heads": 9, "hidden_size": 4}
    assert lm_config({}) == {}


def test_pack_puts_a_worker_on_one_node():
    nodes = [{"CPU": 4.0, "GPU": 4.0}, {"CPU": 4.0, "GPU": 4.0}]
    wanted = [("rollout 0", {"CPU": 1.0, "GPU": 3.0}), ("rollout 1", {"CPU": 1.0, "GPU": 3.0}),
              ("trainer 0", {"CPU": 1.0, "GPU": 1.0}), ("trainer 1", {"CPU": 1.0, "GPU": 1.0}),
              ("trainer 2", {"CPU": 1.0, "GPU": 1.0})]
    where, missing = pack(wanted, nodes)
    assert where == [0, 1, 0, 1, -1] and missing == ["trainer 2"]  # 8 GPUs in all, but 3 + 3 leave 1 + 1
    where, missing = pack([("r", {"CPU": 1.0, "GPU": 0.5}), ("t", {"CPU": 1.0, "GPU": 0.5})], [{"CPU": 2, "GPU": 1}])
    assert where == [0, 0] and missing == []  # colocated: two halves share one GPU


def _hostile_rows(path: Path, names: list[str]) -> Path:
    good = {"id": "a", "messages": [{"role": "user", "content": "1+1?"}], "verifier": "mathruler", "answer": "2"}
    path.write_text("".join(json.dumps({**good, "id": f"r{i}", "verifier": v}) + "\n"
                            for i, v in enumerate(["mathruler", *names])))
    return path


def test_rows_and_pairs_naming_code_are_rejected(tmp_path, import_trap):
    n = len(import_trap.names)
    rows = _hostile_rows(tmp_path / "rows.jsonl", import_trap.names)
    code, out = _run(["stage=text_rl_1", f"data.path={rows}"])
    assert code == 0, out
    assert f"{rows}: rows_in {n + 1}, usable 1, rejected {n}, unknown_verifier {n}; first reject: " \
           f"unknown_verifier:builtins:eval" in out
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": r["id"], "prompt": r, "chosen": "a", "rejected": "b"}) + "\n"
                             for r in map(json.loads, rows.read_text().splitlines())))
    code, out = _run(["stage=mpo", f"data.path={pairs}", "run.eval_every=0"])
    assert code == 0, out
    assert f"{pairs} (preference pairs): rows_in {n + 1}, usable 1, rejected {n}; first reject: " \
           f"prompt_unknown_verifier:builtins:eval" in out
    import_trap.assert_not_imported()


def test_configured_plugin_through_the_command_line(tmp_path, import_trap):
    """`omni-rl run ... verify.plugins=[MODULE] run.dry_run=true`: the plugin's names are usable in rows, rows naming
    code are still rejected (the trap is on PYTHONPATH, never imported); a plugin that fails to import is a problem."""
    (tmp_path / "dry_plugin_mod.py").write_text(
        "from omni_rl.verifiers import register_verifier\n\n"
        "@register_verifier('dry-plugin-check')\ndef check(response, answer, **kwargs):\n    return 1.0\n")
    rows = _hostile_rows(tmp_path / "rows.jsonl", ["dry-plugin-check", *import_trap.names])
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(import_trap.dir),
                                                                           str(ROOT)])}

    def cli(*overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "omni_rl.cli", "run", "stage=text_rl_1", f"data.path={rows}",
                               *overrides, "run.dry_run=true"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)

    n = len(import_trap.names)
    res = cli("verify.plugins=[dry_plugin_mod]")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "dry_plugin_mod: dry-plugin-check" in res.stdout
    assert f"rows_in {n + 2}, usable 2, rejected {n}, unknown_verifier {n}" in res.stdout
    res = cli("verify.plugins=[no_such_plugin_xyz]")
    assert res.returncode == 2 and "verifier plugin 'no_such_plugin_xyz' failed to import" in res.stdout
    assert f"usable 1, rejected {n + 1}" in res.stdout  # without the plugin its name is unknown too
    import_trap.assert_not_imported()
