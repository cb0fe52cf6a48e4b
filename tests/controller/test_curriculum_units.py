"""The curriculum runner's pure parts: curriculum files, the state file's refusal rule, the summary's numbers and the
per-group drift of two checkpoints (hand-made files, hand-computed values)."""

from __future__ import annotations

import json

import pytest

from omni_rl.controller.curriculum import Curriculum, StageSpec, State, load_curriculum
from omni_rl.controller.curriculum_report import ends, window, write_report


def test_shipped_curriculum_and_its_stages_compose():
    from omni_rl.config.compose import compose_config

    c = load_curriculum("nemotron_omni")
    assert [(s.stage, s.filter) for s in c.stages] == [("mpo", False), ("text_rl_1", False), ("image_rl", True),
                                                       ("omni_rl", True), ("text_rl_2", False)]
    for s in c.stages:
        assert compose_config([f"stage={s.stage}"]).run.name == s.stage


@pytest.mark.parametrize("text, match", [
    ("stages: []\n", "non-empty `stages:`"),
    ("stages: [{stage: mpo, filtr: true}]\n", "stage 0: expected"),
    ("stages: [mpo]\nbse: []\n", "unknown keys \\['bse'\\]"),
])
def test_bad_curriculum_files_say_what_is_wrong(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_curriculum(str(path))


def test_unknown_curriculum_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="known curricula are nemotron_omni"):
        load_curriculum("nemotron")


def test_state_refuses_another_command_but_not_the_test_hooks(tmp_path):
    c = Curriculum(name="c", stages=[StageSpec("mpo"), StageSpec("image_rl", filter=True)])
    s = State(tmp_path, c, ["run.steps=2"])
    s.stage("1_mpo")["status"] = "finished"
    s.save()
    again = State(tmp_path, c, ["run.steps=2", "run.stop_after_stage=1_mpo", "run.resume=true"])
    assert again.stage("1_mpo")["status"] == "finished"
    with pytest.raises(ValueError, match=r"other settings \(overrides: \['run.steps=2'\] -> \['run.steps=3'\]\)"):
        State(tmp_path, c, ["run.steps=3"])
    other = Curriculum(name="c", stages=[StageSpec("mpo")])
    with pytest.raises(ValueError, match="stages: "):
        State(tmp_path, other, ["run.steps=2"])


def test_window_and_ends():
    assert [window(n) for n in (1, 4, 5, 60, 200)] == [1, 1, 1, 12, 20]
    rows = [{"step": i, "r": float(i)} for i in range(10)] + [{"step": 10}]
    assert ends(rows, "r", 3) == (1.0, 8.0)  # mean(0, 1, 2), mean(7, 8, 9); the row without "r" is skipped
    assert ends(rows, "missing", 3) is None


def test_report_tables_and_plot(tmp_path):
    def write(key, rows):
        (tmp_path / key).mkdir()
        (tmp_path / key / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write("1_mpo", [{"step": i, "mpo/accuracy": a, **({"eval/mean": e, "eval/source/x": e, "eval/modality/image": e}
                                                     if e is not None else {})}
                    for i, (a, e) in enumerate([(0.5, 0.2), (0.7, None), (0.9, 0.6)])])
    write("2_image_rl", [{"step": i, "reward/mean": r, "reward/source/x": r} for i, r in enumerate([0.1, 0.3, 0.5])])
    write("3_text_rl", [{"step": 0, "reward/mean": 0.2, "reward/modality/text": 0.2, "eval/mean": 0.3,
                         "eval/modality/text": 0.1, "eval/modality/image": 0.5, "eval/modality/audio": 0.25},
                        {"step": 1, "reward/mean": 0.4, "reward/modality/text": 0.4, "eval/mean": 0.35,
                         "eval/modality/text": 0.4, "eval/modality/image": 0.375, "eval/modality/audio": 0.25}])
    drift = {"groups": {}, "moved": ["lm_body", "vision_encoder"], "frozen": ["audio_encoder"]}
    state = {"curriculum": "c", "base_model": "/m/base", "overrides": ["run.steps=3"], "progress": {
        "1_mpo": {"status": "finished", "model_path": "/m/base", "seconds": 12.4, "drift": drift},
        "2_image_rl": {"status": "finished", "model_path": str(tmp_path / "1_mpo" / "final"), "seconds": 30.0,
                       "drift": {**drift, "moved": ["audio_encoder", "lm_body"]}},
        "3_text_rl": {"status": "finished", "model_path": str(tmp_path / "2_image_rl" / "final"), "seconds": 9.0}}}
    md, png = write_report(tmp_path, state)
    text = md.read_text()
    # 3 steps -> window 1: first and last value
    assert "| 1_mpo | `m/base` | 3 | 12 | - | mpo/accuracy 0.500 -> 0.900 | 0.200 -> 0.600 | lm_body, vision_encoder " \
           "| audio_encoder |" in text
    assert "| 2_image_rl | `1_mpo/final` | 3 | 30 | - | reward/mean 0.100 -> 0.500 | - |" in text
    assert "| 2_image_rl | x | 0.100 -> 0.500 | - |" in text and "| 1_mpo | x | - | 0.200 -> 0.600 |" in text
    assert "Frozen groups that moved: 2_image_rl (audio_encoder)" in text
    # the text stage's held-out reward on the modalities it does not train on (text is trained: not listed)
    assert "| 3_text_rl | audio | 0.250 -> 0.250 | +0.000 |" in text
    assert "| 3_text_rl | image | 0.500 -> 0.375 | -0.125 |" in text and "| 3_text_rl | text |" not in text
    assert "| 1_mpo | image |" not in text  # a preference stage trains on what it evaluates
    assert png.stat().st_size > 10_000


def test_checkpoint_drift_per_group(tmp_path):
    import torch
    from safetensors.torch import save_file

    from omni_rl.models.families import get_family
    from omni_rl.models.parts import checkpoint_drift

    omni = get_family("omni")
    a = {"thinker.model.embed_tokens.weight": torch.zeros(3, 2), "thinker.visual.blocks.0.w": torch.ones(2),
         "thinker.visual.merger.mlp.w": torch.ones(2), "thinker.model.layers.0.w": torch.zeros(4),
         "thinker.model.layers.1.w": torch.zeros(4)}
    b = {**a, "thinker.model.layers.0.w": torch.tensor([0.0, 0.5, -0.25, 0.0]),
         "thinker.visual.merger.mlp.w": torch.tensor([1.0, 1.125])}
    for name, tensors in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        save_file(tensors, str(tmp_path / name / "model.safetensors"))
    drift = checkpoint_drift(tmp_path / "a", tmp_path / "b", omni)
    assert drift == {"lm_embeddings": {"tensors": 1, "changed": 0, "max_abs_diff": 0.0},
                     "vision_encoder": {"tensors": 1, "changed": 0, "max_abs_diff": 0.0},
                     "projector": {"tensors": 1, "changed": 1, "max_abs_diff": 0.125},
                     "lm_body": {"tensors": 2, "changed": 1, "max_abs_diff": 0.5}}
    (tmp_path / "c").mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(ValueError, match="not the same model"):
        checkpoint_drift(tmp_path / "a", tmp_path / "c", omni)
