"""TrainBatch: media stored once, splits keep each referenced prompt once per piece and never copy tensors."""

import pickle

import pytest
import torch

from omni_rl.training.batch import TrainBatch, TrainPrompt, TrainSequence


def _batch() -> TrainBatch:
    prompts = [TrainPrompt(prompt_ids=[1, 2, 3], mm_tensors={"pixel_values": torch.randn(64, 8)}, uid="a"),
               TrainPrompt(prompt_ids=[4, 5], uid="b"),
               TrainPrompt(prompt_ids=[6], mm_tensors={"pixel_values": torch.randn(64, 8)}, uid="c")]
    # 4 rollouts of a, 3 of b, 2 of c (contiguous, as the controller builds it)
    seqs = [TrainSequence(prompt_index=p, response_ids=[10 + i], advantage=float(i), weight=1.0 if i != 5 else 0.0)
            for i, p in enumerate([0, 0, 0, 0, 1, 1, 1, 2, 2])]
    return TrainBatch(prompts=prompts, sequences=seqs)


def test_counts():
    b = _batch()
    assert b.num_sequences == 9 and b.num_weighted == 8.0 and b.num_tokens() == 9
    assert b.groups() == [(0, [0, 1, 2, 3]), (1, [4, 5, 6]), (2, [7, 8])]


def test_split_keeps_prompts_once_and_shares_tensors():
    b = _batch()
    shards = b.split(2)  # sizes 5 / 4: a a a a b | b b c c
    assert [s.num_sequences for s in shards] == [5, 4]
    assert [p.uid for p in shards[0].prompts] == ["a", "b"]
    assert [p.uid for p in shards[1].prompts] == ["b", "c"]
    assert [s.prompt_index for s in shards[1].sequences] == [0, 0, 1, 1]  # re-indexed
    assert shards[0].prompts[0].mm_tensors["pixel_values"] is b.prompts[0].mm_tensors["pixel_values"]
    assert [s.advantage for sh in shards for s in sh.sequences] == [s.advantage for s in b.sequences]
    assert sum(s.num_weighted for s in shards) == b.num_weighted


def test_split_more_pieces_than_sequences():
    b = _batch().select([0, 1])
    assert [s.num_sequences for s in b.split(3)] == [1, 1, 0]
    assert b.split(3)[2].prompts == []


def test_chunks_are_micro_batches():
    b = _batch()
    chunks = b.chunks(4)
    assert [c.num_sequences for c in chunks] == [4, 4, 1]
    assert [[p.uid for p in c.prompts] for c in chunks] == [["a"], ["b", "c"], ["c"]]
    assert TrainBatch(prompts=[], sequences=[]).chunks(4) == []
    with pytest.raises(ValueError):
        b.chunks(0)


def test_pickled_shard_carries_media_once():
    """Through Ray a shard is pickled: the prompt's media goes once, not once per rollout."""
    b = _batch()
    one_prompt = len(pickle.dumps(b.select([0])))
    four_rollouts = len(pickle.dumps(b.select([0, 1, 2, 3])))
    assert four_rollouts - one_prompt < 1000 < b.prompts[0].mm_tensors["pixel_values"].numel() * 4


def test_with_old_logp():
    b = _batch().select([7, 8])
    c = b.with_old_logp([[-0.5], [-0.25]])
    assert [s.old_logp for s in c.sequences] == [[-0.5], [-0.25]] and b.sequences[0].old_logp is None
    assert c.prompts is b.prompts
    with pytest.raises(ValueError):
        b.with_old_logp([[-0.5]])
