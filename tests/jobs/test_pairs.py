"""Rejection-sampling pairs: de-duplication, ordering and the pair cap, on hand-made candidates."""

from __future__ import annotations

from omni_rl.jobs.preferences import make_pairs


def test_best_accepted_meets_worst_rejected_first():
    responses = ["a", "b", "c", "d", "e"]
    scores = [0.6, 1.0, 0.0, 0.3, 1.0]
    p = make_pairs(responses, scores, accept=0.5, reject=0.5, max_pairs=10)
    # accepted best first (ties: earlier first): b(1.0), e(1.0), a(0.6); rejected worst first: c(0.0), d(0.3)
    assert p.pairs == [(1, 2), (4, 3), (0, 2)]
    assert (p.accepted, p.rejected, p.duplicates) == (3, 2, 0)


def test_cap_and_no_repeated_pair():
    responses = [f"r{i}" for i in range(6)]
    scores = [1, 1, 0, 0, 0, 0]
    assert make_pairs(responses, scores, accept=0.5, reject=0.5, max_pairs=2).pairs == [(0, 2), (1, 3)]
    allp = make_pairs(responses, scores, accept=0.5, reject=0.5, max_pairs=100).pairs
    assert allp == [(0, 2), (1, 3), (0, 4), (1, 5)]  # every rejected used once before any accepted repeats a partner
    assert len(set(allp)) == len(allp)


def test_identical_responses_count_once():
    responses = ["\\boxed{4}", " \\boxed{4} ", "\\boxed{5}", "\\boxed{5}", "\\boxed{6}"]
    scores = [1.0, 1.0, 0.0, 0.0, 0.0]
    p = make_pairs(responses, scores, accept=0.5, reject=0.5, max_pairs=4)
    assert p.duplicates == 2 and (p.accepted, p.rejected) == (1, 2)
    assert p.pairs == [(0, 2), (0, 4)]


def test_no_pair_without_both_sides_and_gap_between_thresholds():
    assert make_pairs(["a", "b"], [1.0, 1.0], accept=0.5, reject=0.5, max_pairs=2).pairs == []
    assert make_pairs(["a", "b"], [0.0, 0.2], accept=0.5, reject=0.5, max_pairs=2).pairs == []
    # scores between the thresholds are neither chosen nor rejected
    p = make_pairs(["a", "b", "c"], [0.9, 0.5, 0.1], accept=0.8, reject=0.3, max_pairs=4)
    assert p.pairs == [(0, 2)] and (p.accepted, p.rejected) == (1, 1)
