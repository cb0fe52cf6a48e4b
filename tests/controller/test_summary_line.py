"""The one line per step that the RL and preference loops print."""

from omni_rl.controller.preference import summary_line
from omni_rl.wiring.run import metric_text


def test_metric_text_formats_numbers_and_marks_missing_ones():
    assert metric_text({"a": 1.23456}, "a") == "1.235"
    assert metric_text({"a": 2}, "a", ".1f") == "2.0"
    assert metric_text({}, "a") == metric_text({"a": "x"}, "a") == metric_text({"a": None}, "a") == "-"


def test_preference_summary_line():
    m = {"train/loss": 0.12345, "mpo/accuracy": 0.5, "mpo/delta": 0.01, "time/step": 1.26, "eval/mean": 0.75}
    assert summary_line(3, m) == ("step   3 | loss 0.1235 | accuracy 0.50 margin - | dpo - bco - sft - delta 0.0100 "
                                  "| train 1.3s | eval 0.750")
