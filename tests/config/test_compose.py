"""Every YAML under configs/ composes against the schema; overrides land; typos fail loudly."""

from pathlib import Path

import pytest

from omni_rl.config import ConfigError, compose_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STAGES = sorted(p.stem for p in (CONFIGS / "stage").glob("*.yaml"))


def test_default_is_image_rl():
    cfg = compose_config()
    assert cfg.run.name == "image_rl"
    assert cfg.model.family == "omni"
    assert cfg.run.output_dir == "outputs/image_rl"


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_composes(stage):
    cfg = compose_config([f"stage={stage}"])
    assert cfg.run.name == stage
    assert cfg.rollout.n >= 2


def test_overrides_apply_with_types():
    cfg = compose_config(["rollout.n=4", "trainer.lr=1e-6", "trainer.freeze.lm_embeddings=true", "run.steps=3"])
    assert (cfg.rollout.n, cfg.trainer.lr, cfg.trainer.freeze.lm_embeddings, cfg.run.steps) == (4, 1e-6, True, 3)


def test_text_rl_freezes_embeddings_and_towers():
    f = compose_config(["stage=text_rl_1"]).trainer.freeze
    assert f.lm_embeddings and f.vision_encoder and f.audio_encoder and not f.lm_body


@pytest.mark.parametrize("bad", ["trainer.lrr=1", "rollout.n=many", "stage=nope"])
def test_bad_overrides_raise_clear_error(bad):
    with pytest.raises(ConfigError) as e:
        compose_config([bad])
    assert bad.split("=")[0].split(".")[-1] in str(e.value) or "nope" in str(e.value)


@pytest.mark.parametrize("override, message", [
    ("rollout.n=1.5", "rollout.n: expected an integer, got '1.5'; pass an integer, e.g. rollout.n=16 (its default)"),
    ("logging.progress=maybe", "logging.progress: expected true or false, got 'maybe'; pass true or false, e.g. "
                               "logging.progress=true (its default)"),
    ("model.tiny_variant=[1]", "model.tiny_variant: expected a string or null, got '[1]'; pass a string or null, "
                               "e.g. model.tiny_variant=null (its default)"),
    ("rollout.n=null", "rollout.n: expected an integer, got 'null'"),
    ("data.synthetic_tasks=5", "data.synthetic_tasks: expected a list of strings ([a,b]), got '5'"),
    ("trainer.freeze=3", "trainer.freeze: expected a group of keys, got '3'; set its keys one by one "
                         "(trainer.freeze.<key>=value)"),
])
def test_wrong_type_names_key_expected_type_and_value(override, message):
    with pytest.raises(ConfigError) as e:
        compose_config(["stage=image_rl", override])
    assert str(e.value).startswith(message), str(e.value)
    assert "`omni-rl show-config` prints every key's value" in str(e.value)


@pytest.mark.parametrize("override", ["trainer.lrr=3", "+trainer.lrr=3"])
def test_unknown_key_is_refused_with_or_without_plus(override):
    # Hydra's `+key=value` adds a key the schema lacks without an error of its own
    with pytest.raises(ConfigError) as e:
        compose_config([override])
    assert str(e.value).startswith("trainer.lrr: no such key; did you mean trainer.lr? (trainer has: num_workers, ")


def test_unknown_nested_and_list_item_keys_are_refused():
    with pytest.raises(ConfigError, match=r"^trainer\.freeze\.lm_bodyy: no such key; did you mean trainer\.freeze\."
                                          r"lm_body\? \(trainer\.freeze has: vision_encoder, "):
        compose_config(["+trainer.freeze.lm_bodyy=true"])
    with pytest.raises(ConfigError, match=r"^lo: no such key; did you mean low\? \(BandRule has: source, "):
        compose_config(["filter.bands=[{lo: 0.1}]"])


def test_plus_adds_entries_to_mappings():
    cfg = compose_config(["+data.mixture.charts=2.0", "+filter.verifier_thresholds.asr=0.5",
                          "+rollout.resources.rollout_host=1"])
    assert cfg.data.mixture["charts"] == 2.0 and cfg.filter.verifier_thresholds == {"asr": 0.5}
    assert cfg.rollout.resources == {"rollout_host": 1.0}


@pytest.mark.parametrize("override, key", [("trainer.lr_schedule=linear", "trainer.lr_schedule"),
                                           ("trainer.min_lr_ratio=1.5", "trainer.min_lr_ratio"),
                                           ("run.eval_every=-1", "run.eval_every"),
                                           ("run.steps=2", "trainer.warmup_steps=2"),  # cosine after 2 warm-up steps
                                           ("data.synthetic_tasks=[image_colour,nope]",
                                            "data.synthetic_tasks: unknown synthetic tasks \\['nope'\\]"),
                                           ("data.eval_tasks=[nope]", "data.eval_tasks: unknown synthetic tasks"),
                                           ("verify.abstention_markers=[]", "verify.abstention_markers: abstention "
                                            "markers: the list is empty"),
                                           ("verify.abstention_markers=['?']", "verify.abstention_markers: abstention "
                                            "marker '\\?' has no words")])
def test_bad_values_fail_at_compose_time(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose_config(["stage=image_rl", override])


def test_abstention_markers_default_to_the_builtin_ones_and_take_a_list():
    assert compose_config([]).verify.abstention_markers is None
    cfg = compose_config(["verify.abstention_markers=[no idea,beats me]"])
    assert list(cfg.verify.abstention_markers) == ["no idea", "beats me"]


def test_image_rl_schedule_and_eval():
    cfg = compose_config(["stage=image_rl"])
    assert (cfg.trainer.lr_schedule, cfg.run.eval_every, cfg.run.steps) == ("cosine", 25, 200)
    assert cfg.data.mixture == {"image_colour": 1.0, "image_count": 1.0, "image_shape": 1.0, "gui_button": 1.0}
    assert sorted(cfg.data.synthetic_tasks) == sorted(cfg.data.mixture)  # every default task is in the mixture
    assert compose_config(["stage=image_rl", "trainer.lr_schedule=constant"]).trainer.lr_schedule == "constant"


def test_trainer_strategy_and_mixed_precision_are_checked_at_compose():
    assert compose_config(["trainer.strategy=fsdp2", "trainer.mixed_precision=bfloat16"]).trainer.strategy == "fsdp2"
    assert compose_config(["trainer.strategy=fsdp2", "trainer.prompt_once=true"]).trainer.prompt_once is True
    for overrides, message in ((["trainer.strategy=zero3"], "choose one of replicated, fsdp2"),
                               (["trainer.strategy=fsdp2", "trainer.mixed_precision=fp16"], "null or bfloat16"),
                               (["trainer.mixed_precision=bfloat16"], "needs trainer.strategy=fsdp2"),
                               (["trainer.prompt_once=true", "trainer.activation_checkpointing=true"],
                                "a second time; choose one")):
        with pytest.raises(ConfigError, match=message):
            compose_config(overrides)
