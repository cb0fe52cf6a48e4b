"""Pass rates and bands: hand-computed cases, rule order, presets, config errors."""

from __future__ import annotations

import pytest

from omni_rl.jobs.bands import (BAND_PRESETS, KEPT, TOO_EASY, TOO_HARD, Band, Tally, band_for, bands_from_config,
                                pass_rate, success_threshold)


def test_pass_rate_counts_scores_at_or_above_the_threshold():
    assert pass_rate([1.0, 0.0, 0.5, 0.49, 1.0, 0.0, 0.0, 0.0], 0.5) == 3 / 8
    assert pass_rate([0.8, 0.79], 0.8) == 0.5
    assert pass_rate([], 0.5) == 0.0


def test_per_verifier_threshold_overrides_the_default():
    assert success_threshold("asr", 0.5, {"asr": 0.8}) == 0.8
    assert success_threshold("mathruler", 0.5, {"asr": 0.8}) == 0.5


def test_image_rl_preset_keeps_below_0_8_only():
    (band,) = BAND_PRESETS["image_rl"]
    assert [band.classify(k / 8) for k in range(9)] == [KEPT] * 7 + [TOO_EASY] * 2  # 0.75 kept, 0.875 and 1 not
    assert band.classify(0.8) == TOO_EASY and band.classify(0.7999) == KEPT
    assert band.classify(0.0) == KEPT  # the recipe keeps the prompts the initial policy never solves


def test_inclusive_edges_and_too_hard():
    band = Band(low=0.3, high=0.7)
    assert [band.classify(x) for x in (0.2999, 0.3, 0.5, 0.7, 0.7001)] == [TOO_HARD, KEPT, KEPT, KEPT, TOO_EASY]


def test_omni_preset_narrows_audio_qa_but_not_asr():
    bands = bands_from_config("omni_rl", [])
    qa = band_for(bands, source="audio_pitch", modality="audio", verifier="multiple-choice")
    asr = band_for(bands, source="asr_tones", modality="audio", verifier="asr")
    video = band_for(bands, source="video_motion", modality="video", verifier="multiple-choice")
    assert (qa.low, qa.high) == (0.3, 0.7)
    assert (asr.low, asr.high) == (0.1, 0.9) and (video.low, video.high) == (0.1, 0.9)
    assert qa.classify(0.25) == TOO_HARD and asr.classify(0.25) == KEPT
    assert qa.classify(0.875) == TOO_EASY and asr.classify(0.875) == KEPT and asr.classify(0.9375) == TOO_EASY


def test_configured_rules_come_first_and_unmatched_rows_are_kept():
    bands = bands_from_config("image_rl", [{"source": ["charts"], "low": 0.25, "high": 0.5}])
    charts = band_for(bands, source="charts", modality="image", verifier="mathruler")
    other = band_for(bands, source="gui", modality="image", verifier="gui-coordinate")
    assert (charts.low, charts.high, charts.name) == (0.25, 0.5, "bands[0]")
    assert other.name == "image_rl"
    assert band_for(bands_from_config("keep_all", []), source="x", modality="text", verifier="format").classify(1.0) \
        == KEPT
    # a rule matches only when every list it gives contains the row's value
    rule = Band(source=("a",), verifier=("asr",))
    assert rule.matches(source="a", modality="audio", verifier="asr")
    assert not rule.matches(source="a", modality="audio", verifier="mathruler")


@pytest.mark.parametrize("preset, rules, message", [
    ("nope", [], "filter.band_preset='nope'"),
    ("keep_all", [{"low": 0.6, "high": 0.4}], "filter.bands[0]"),
    ("keep_all", [{"low": -0.1, "high": 0.4}], "filter.bands[0]"),
])
def test_bad_band_config_is_a_clear_error(preset, rules, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        bands_from_config(preset, rules)


def test_tally_accounts_every_row():
    t = Tally()
    for outcome, rate, score in ((KEPT, 0.5, 0.55), (KEPT, 0.25, None), (TOO_EASY, 1.0, 0.9), (TOO_HARD, 0.0, 0.2)):
        t.add(outcome, rate, mean_score=score)
    t.add("rejected", reason="corrupt_media: x.png: not an image")
    t.add("rejected", reason="corrupt_media: y.png")
    d = t.as_dict()
    assert d["rows_in"] == 6 == d["kept"] + d["filtered_out"] + d["rejected"]
    assert (d["kept"], d["too_easy"], d["too_hard"], d["rejected"], d["scored"]) == (2, 1, 1, 2, 4)
    assert d["mean_pass_rate"] == pytest.approx((0.5 + 0.25 + 1.0 + 0.0) / 4)
    assert d["mean_score"] == pytest.approx((0.55 + 0.9 + 0.2) / 3)  # over the rows that carry their scores
    assert d["reject_reasons"] == {"corrupt_media": 2}
