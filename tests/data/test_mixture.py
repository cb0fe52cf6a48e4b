import numpy as np
import pytest

from omni_rl.data.mixture import MixtureSampler

SOURCES = ["a"] * 6 + ["b"] * 3 + ["c"] * 1


def test_batches_are_pure_functions_of_step():
    s1 = MixtureSampler(SOURCES, weights=None, seed=3)
    s2 = MixtureSampler(SOURCES, weights=None, seed=3)
    full = [s1.batch(k, 4) for k in range(6)]
    resumed = [s2.batch(k, 4) for k in range(3, 6)]  # a resumed run starts at step 3
    assert resumed == full[3:]


def test_single_source_visits_every_row_once_per_epoch():
    s = MixtureSampler(["x"] * 10, weights=None, seed=0)
    rows = s.batch(0, 5) + s.batch(1, 5)
    assert sorted(rows) == list(range(10))
    assert sorted(s.batch(2, 5) + s.batch(3, 5)) == list(range(10))


def test_weights_steer_source_frequency():
    s = MixtureSampler(SOURCES, weights={"a": 0.0, "b": 1.0, "c": 3.0}, seed=1)
    rows = [r for k in range(200) for r in s.batch(k, 4)]
    src = np.array([SOURCES[r] for r in rows])
    assert (src == "a").sum() == 0
    frac_c = (src == "c").mean()
    assert frac_c == pytest.approx(0.75, abs=0.03)  # 800 draws: sd of the fraction ~0.015


def test_unknown_source_weight_is_an_error():
    with pytest.raises(ValueError, match=r"unknown sources \['zzz'\].*turned off with: data.mixture.zzz=0"):
        MixtureSampler(SOURCES, weights={"zzz": 1.0}, seed=0)


def test_a_zero_weight_may_name_a_source_the_data_lacks():
    """How a command line drops a stage's default weight: `data.mixture.<task>=0` (Hydra cannot delete the key)."""
    s = MixtureSampler(SOURCES, weights={"zzz": 0.0, "b": 1.0, "c": 1.0}, seed=0)
    assert s.names == ["b", "c"] and s.probs.tolist() == [0.5, 0.5]
