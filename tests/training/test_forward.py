"""Scoring forward: encoder-once == per-rollout HF forward (logp and gradients, encoders trainable), one encoder
pass per unique prompt media, and the text path == the plain HF causal-LM forward."""

import pytest
import torch
from training_helpers import omni_prompt, random_sequences, text_batch

from omni_rl.models.policy import load_model, load_processor
from omni_rl.training.batch import TrainBatch
from omni_rl.training.forward import make_adapter, score


def _loss_and_grads(model, adapter, batch, encoder_once):
    model.zero_grad(set_to_none=True)
    out = score(adapter, batch, encoder_once=encoder_once)
    adv = torch.tensor([s.advantage for s in batch.sequences])
    loss = (out.logp.sum(-1) * adv).sum()  # any scalar of all logp: exercises every gradient path
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, loss.detach(), grads


@pytest.fixture(scope="module")
def omni(omni_model_path):
    model = load_model(omni_model_path, "float32")
    return model, make_adapter(model, "omni"), load_processor(omni_model_path)


def test_omni_encoder_once_matches_per_rollout(omni):
    model, adapter, proc = omni
    kinds = ["image", "image+audio", "text", "audio"]
    prompts = [omni_prompt(proc, k, seed=i) for i, k in enumerate(kinds)]
    batch = TrainBatch(prompts=prompts, sequences=random_sequences(len(prompts), 3, seed=1))
    once, loss_once, g_once = _loss_and_grads(model, adapter, batch, encoder_once=True)
    per, loss_per, g_per = _loss_and_grads(model, adapter, batch, encoder_once=False)
    # media items through an encoder: 1 image + (1 image + 1 audio) + 1 audio = 4 once; x3 rollouts = 12 per rollout
    assert once.media_encoded == 4 and per.media_encoded == 12
    assert torch.equal(once.mask, per.mask)
    torch.testing.assert_close(once.logp, per.logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss_once, loss_per, atol=1e-5, rtol=1e-6)
    assert set(g_once) == set(g_per)
    assert any(n.startswith("visual.") for n in g_once) and any(n.startswith("audio_tower.") for n in g_once)
    for n in g_per:
        torch.testing.assert_close(g_once[n], g_per[n], atol=1e-5, rtol=1e-5, msg=n)


def test_omni_logp_is_a_log_distribution(omni):
    model, adapter, proc = omni
    batch = TrainBatch(prompts=[omni_prompt(proc, "image", 7)], sequences=random_sequences(1, 2, seed=2))
    with torch.no_grad():
        out = score(adapter, batch)
    assert (out.logp[out.mask > 0] < 0).all() and (out.logp[out.mask == 0] == 0).all()
    assert out.mask.sum(-1).tolist() == [float(len(s.response_ids)) for s in batch.sequences]


def test_text_path_matches_hf_causal_lm(text_model_path):
    model = load_model(text_model_path, "float64")
    adapter = make_adapter(model, "text")
    batch = text_batch(seed=0)
    with torch.no_grad():
        out = score(adapter, batch)
        for b, s in enumerate(batch.sequences):  # one unpadded HF forward per sequence, by hand
            ids = batch.prompts[s.prompt_index].prompt_ids + s.response_ids
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
            L = len(batch.prompts[s.prompt_index].prompt_ids)
            expected = torch.log_softmax(logits[L - 1:-1], -1).gather(-1, torch.tensor(s.response_ids)[:, None])[:, 0]
            torch.testing.assert_close(out.logp[b, :len(s.response_ids)], expected, atol=1e-10, rtol=0)
    assert out.media_encoded == 0


def test_temperature_scales_logits(text_model_path):
    model = load_model(text_model_path, "float64")
    adapter = make_adapter(model, "text")
    batch = text_batch(seed=1).select([0])
    with torch.no_grad():
        t1 = score(adapter, batch, temperature=1.0).logp
        t2 = score(adapter, batch, temperature=2.0).logp
    assert not torch.allclose(t1, t2)


def test_media_for_a_text_family_raises(text_model_path):
    model = load_model(text_model_path, "float32")
    with pytest.raises(ValueError, match="takes no media"):
        make_adapter(model, "text").encode({"pixel_values": torch.zeros(1)})
    with pytest.raises(ValueError, match="no trainer forward adapter"):
        make_adapter(model, "nope")
