"""Scoring forward: encoder-once == per-rollout HF forward (logp and gradients, encoders trainable), one encoder
pass per unique prompt media, and the text path == the plain HF causal-LM forward."""

import pytest
import torch
from training_helpers import OMNI, TEXT, mm_prompt, random_sequences, text_batch

from omni_rl.models.families import get_family
from omni_rl.models.policy import load_model, load_processor
from omni_rl.training.batch import TrainBatch
from omni_rl.training.forward import score


def _loss_and_grads(model, fwd, batch, encoder_once=True, **score_kwargs):
    model.zero_grad(set_to_none=True)
    out = score(fwd, batch, encoder_once=encoder_once, **score_kwargs)
    adv = torch.tensor([s.advantage for s in batch.sequences], dtype=out.logp.dtype)
    loss = (out.logp.sum(-1) * adv).sum()  # any scalar of all logp: exercises every gradient path
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, loss.detach(), grads


@pytest.fixture(scope="module")
def omni(omni_model_path):
    model = load_model(omni_model_path, "float32", family=OMNI)
    return model, OMNI.forward(model), load_processor(omni_model_path, OMNI)


def test_omni_encoder_once_matches_per_rollout(omni):
    model, fwd, proc = omni
    kinds = ["image", "image+audio", "text", "audio"]
    prompts = [mm_prompt(proc, k, seed=i) for i, k in enumerate(kinds)]
    batch = TrainBatch(prompts=prompts, sequences=random_sequences(len(prompts), 3, seed=1))
    once, loss_once, g_once = _loss_and_grads(model, fwd, batch, encoder_once=True)
    per, loss_per, g_per = _loss_and_grads(model, fwd, batch, encoder_once=False)
    # media items through an encoder: 1 image + (1 image + 1 audio) + 1 audio = 4 once; x3 rollouts = 12 per rollout
    assert once.media_encoded == 4 and per.media_encoded == 12
    assert torch.equal(once.mask, per.mask)
    torch.testing.assert_close(once.logp, per.logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss_once, loss_per, atol=1e-5, rtol=1e-6)
    assert set(g_once) == set(g_per)
    assert any(n.startswith("visual.") for n in g_once) and any(n.startswith("audio_tower.") for n in g_once)
    for n in g_per:
        torch.testing.assert_close(g_once[n], g_per[n], atol=1e-5, rtol=1e-5, msg=n)


def _family_cases():
    """Every registered family with a tiny model: one prompt per medium it reads, plus a text prompt (a new family
    is checked without editing this file); plus a video with its own soundtrack for omni."""
    from omni_rl.models.families import tiny_families

    cases = [(f, [k for k in ("image", "video", "audio") if k in get_family(f).modalities] + ["text"])
             for f in tiny_families()]
    return cases + [("omni", ["video+track", "video", "audio", "text"])]


@pytest.mark.parametrize("family, kinds", _family_cases())
def test_every_family_encoder_once_matches_per_rollout(family, kinds):
    from omni_rl.models.tiny import build_tiny_model

    path, fam = build_tiny_model(family), get_family(family)
    model, proc = load_model(path, "float32", family=fam), load_processor(path, fam)
    fwd = fam.forward(model)
    prompts = [mm_prompt(proc, k, seed=i) for i, k in enumerate(kinds)]
    batch = TrainBatch(prompts=prompts, sequences=random_sequences(len(prompts), 3, seed=4))
    once, loss_once, g_once = _loss_and_grads(model, fwd, batch, encoder_once=True)
    per, loss_per, g_per = _loss_and_grads(model, fwd, batch, encoder_once=False)
    n_media = sum({"text": 0, "video+track": 2}.get(k, 1) for k in kinds)  # a soundtrack is an audio item
    assert (once.media_encoded, per.media_encoded) == (n_media, 3 * n_media)
    torch.testing.assert_close(once.logp, per.logp, atol=1e-5, rtol=0)
    assert set(g_once) == set(g_per)
    for n in g_per:
        torch.testing.assert_close(g_once[n], g_per[n], atol=1e-5, rtol=1e-5, msg=n)


def test_placeholder_token_in_a_response_is_plain_text(omni):
    model, fwd, proc = omni
    prompt = mm_prompt(proc, "image", 3)
    image_id = model.config.image_token_id
    batch = TrainBatch(prompts=[prompt], sequences=random_sequences(1, 2, seed=3))
    batch.sequences[0].response_ids = [30, image_id, 31]
    with torch.no_grad():
        out = score(fwd, batch)  # the prompt's features fill only the prompt's placeholders
    assert torch.isfinite(out.logp).all() and out.mask[0].sum() == 3


def test_omni_logp_is_a_log_distribution(omni):
    model, fwd, proc = omni
    batch = TrainBatch(prompts=[mm_prompt(proc, "image", 7)], sequences=random_sequences(1, 2, seed=2))
    with torch.no_grad():
        out = score(fwd, batch)
    assert (out.logp[out.mask > 0] < 0).all() and (out.logp[out.mask == 0] == 0).all()
    assert out.mask.sum(-1).tolist() == [float(len(s.response_ids)) for s in batch.sequences]


def test_text_path_matches_hf_causal_lm(text_model_path):
    model = load_model(text_model_path, "float64", family=TEXT)
    fwd = TEXT.forward(model)
    batch = text_batch(seed=0)
    with torch.no_grad():
        out = score(fwd, batch)
        for b, s in enumerate(batch.sequences):  # one unpadded HF forward per sequence, by hand
            ids = batch.prompts[s.prompt_index].prompt_ids + s.response_ids
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
            L = len(batch.prompts[s.prompt_index].prompt_ids)
            expected = torch.log_softmax(logits[L - 1:-1], -1).gather(-1, torch.tensor(s.response_ids)[:, None])[:, 0]
            torch.testing.assert_close(out.logp[b, :len(s.response_ids)], expected, atol=1e-10, rtol=0)
    assert out.media_encoded == 0


def test_temperature_scales_logits(text_model_path):
    model = load_model(text_model_path, "float64", family=TEXT)
    fwd = TEXT.forward(model)
    batch = text_batch(seed=1).select([0])
    with torch.no_grad():
        t1 = score(fwd, batch, temperature=1.0).logp
        t2 = score(fwd, batch, temperature=2.0).logp
    assert not torch.allclose(t1, t2)


def test_media_for_a_text_family_raises(text_model_path):
    model = load_model(text_model_path, "float32", family=TEXT)
    with pytest.raises(ValueError, match="takes no media"):
        TEXT.forward(model).encode({"pixel_values": torch.zeros(1)})
    with pytest.raises(ValueError, match="unknown model family .nope.; registered: audio, nemotron_omni, omni, text, "
                                         "vl"):
        get_family("nope")


def test_sequence_logp_two_image_prompts_g3_matches_plain_thinker(omni):
    """2 image prompts x G=3: encoder-once == naive (logp, grads of every parameter incl. vision encoder and projector)
    == a plain unbatched `thinker(input_ids, **mm_tensors)` per sequence; encoder forwards 2 (once) vs 6 (naive)."""
    from omni_rl.models.parts import param_groups
    from omni_rl.models.policy import sequence_inputs
    from omni_rl.training.forward import sequence_logp

    model, _, proc = omni
    batch = TrainBatch(prompts=[mm_prompt(proc, "image", 11), mm_prompt(proc, "image", 12)],
                       sequences=random_sequences(2, 3, seed=9))
    results = {}
    for once in (True, False):
        model.zero_grad(set_to_none=True)
        rows, stats = sequence_logp(model, OMNI, batch, encoder_once=once)
        sum(r.sum() * s.advantage for r, s in zip(rows, batch.sequences)).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[once] = ([r.detach() for r in rows], grads, stats["encoder_forwards"])
    assert results[True][2] == 2 and results[False][2] == 6
    groups = param_groups(model, OMNI)
    vision = set(groups["vision_encoder"]) | {n for n in groups["projector"] if n.startswith("visual.")}
    assert vision and vision <= set(results[True][1])  # the vision tower and its merger get gradients
    for n, g in results[False][1].items():
        torch.testing.assert_close(results[True][1][n], g, atol=1e-5, rtol=1e-5, msg=n)
    with torch.no_grad():
        for b, s in enumerate(batch.sequences):
            p = batch.prompts[s.prompt_index]
            logits = model(**sequence_inputs(p.prompt_ids, p.mm_tensors, s.response_ids)).logits[0]
            L = len(p.prompt_ids)
            plain = torch.log_softmax(logits[L - 1:-1], -1).gather(-1, torch.tensor(s.response_ids)[:, None])[:, 0]
            torch.testing.assert_close(results[True][0][b], plain, atol=1e-5, rtol=0)
            torch.testing.assert_close(results[False][0][b], plain, atol=1e-5, rtol=0)


def test_video_with_its_soundtrack_matches_the_hf_forward(omni):
    """A video with its own audio track (`use_audio_in_video`): the processor interleaves 2 s chunks of frame tokens
    and sound tokens; the encoder-once path (features scattered per modality, M-RoPE positions per prompt) gives the
    same logp as HF's own forward of each full sequence with `use_audio_in_video=True`, and differs from it when the
    positions ignore the soundtrack (so the flag is what makes them equal)."""
    from omni_rl.models.policy import sequence_inputs

    model, fwd, proc = omni
    prompt = mm_prompt(proc, "video+track", seed=3)
    tok = proc.tokenizer
    ids = prompt.prompt_ids
    v, a = tok.convert_tokens_to_ids(tok.video_token), tok.convert_tokens_to_ids(tok.audio_token)
    # 6 temporal patches x 4 tokens at 0.5 s each -> chunks [0, 2 s) and [2 s, 3 s): 16 + 8 frame tokens; 3 s of
    # sound -> 75 tokens, 50 per chunk: <|audio_bos|> V*16 A*50 V*8 A*25 <|audio_eos|>
    span = ids[ids.index(v):len(ids) - ids[::-1].index(a)]
    assert span == [v] * 16 + [a] * 50 + [v] * 8 + [a] * 25
    batch = TrainBatch(prompts=[prompt], sequences=random_sequences(1, 2, seed=5))
    with torch.no_grad():
        once = score(fwd, batch, encoder_once=True)
        for i, s in enumerate(batch.sequences):
            kw = sequence_inputs(ids, prompt.mm_tensors, s.response_ids)
            logits = model(**kw, use_cache=False).logits[0, len(ids) - 1:-1]
            ref = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(s.response_ids)[:, None])[:, 0]
            torch.testing.assert_close(once.logp[i, :len(s.response_ids)], ref, atol=1e-5, rtol=0)
        flat = {k: t for k, t in prompt.mm_tensors.items() if k != "use_audio_in_video"}
        no_flag = score(fwd, TrainBatch(prompts=[type(prompt)(prompt_ids=ids, mm_tensors=flat, uid="x")],
                                            sequences=batch.sequences), encoder_once=True)
    assert (no_flag.logp - once.logp).abs().max() > 1e-4


@pytest.mark.parametrize("family", ["text", "vl", "omni", "audio"])
def test_prompt_once_equals_the_full_forward_in_float64(family):
    """Each prompt through the decoder once, its G responses attending to its cached keys / values: the same logp and
    the same gradients (encoders and every LM weight trainable) as the full forward, to float64 rounding. Prompts of
    different lengths (the padded prompt batch) and responses of 1-6 tokens; omni includes a video with its own
    soundtrack (interleaved M-RoPE positions)."""
    path, model, fwd = _float64_family(family)
    if family == "text":
        batch = text_batch(seed=2)
    else:
        proc = load_processor(path, get_family(family))
        kinds = [k for k in ("image", "video", "audio") if k in get_family(family).modalities] + ["text"]
        kinds += ["video+track"] if family == "omni" else []
        prompts = [mm_prompt(proc, k, seed=i) for i, k in enumerate(kinds)]
        batch = TrainBatch(prompts=prompts, sequences=random_sequences(len(prompts), 4, seed=7))
    assert len({len(p.prompt_ids) for p in batch.prompts}) > 1
    _assert_same_logp_and_grads(_loss_and_grads(model, fwd, batch, prompt_once=True),
                                _loss_and_grads(model, fwd, batch))


def _float64_family(family):
    """(checkpoint dir, the tiny model of `family` in float64 in train mode, its FamilyForward)."""
    from omni_rl.models.tiny import build_tiny_model

    path = build_tiny_model(family)
    model = load_model(path, "float64", family=get_family(family)).train()
    return path, model, get_family(family).forward(model)


def _assert_same_logp_and_grads(got, want):
    """(ScoreOutput, loss, grads) pairs from `_loss_and_grads` of two forwards of one float64 model."""
    (out, _, grads), (ref, _, ref_grads) = got, want
    assert out.logp.dtype == torch.float64 and torch.equal(out.mask, ref.mask)
    assert out.media_encoded == ref.media_encoded
    # float64 weights, but transformers' RMSNorm computes in float32: a 1e-16 difference in what reaches a norm
    # (other batch shapes, other summation order) comes out as ~1e-8 relative, measured up to 4e-7 absolute on
    # gradients of magnitude ~5 -- hence 1e-6 and not float64's 1e-12
    torch.testing.assert_close(out.logp, ref.logp, atol=1e-6, rtol=0)
    assert set(grads) == set(ref_grads)
    for n in ref_grads:
        torch.testing.assert_close(grads[n], ref_grads[n], atol=1e-6, rtol=1e-5, msg=n)


def test_prompt_once_is_refused_for_a_mamba_family():
    fwd = get_family("nemotron_omni").forward(model=None)
    batch = text_batch(seed=0)
    with pytest.raises(ValueError, match="nemotron_omni.*no prompt-once forward.*Mamba2.*trainer.prompt_once=false"):
        score(fwd, batch, prompt_once=True)


def test_pack_rows_is_first_fit_longest_first():
    from omni_rl.training.forward import pack_rows

    assert pack_rows([5, 3, 8, 2, 6], 8) == [[2], [4, 3], [0, 1]]  # 8 | 6+2 | 5+3
    assert pack_rows([9, 1], 8) == [[0], [1]]  # longer than a row: a row of its own
    assert pack_rows([], 8) == []


@pytest.mark.parametrize("family", ["text", "audio"])
def test_packing_equals_the_padded_forward_in_float64(family):
    """The micro-batch's sequences packed into fewer rows (positions restarting per sequence, no attention mask):
    the same logp and the same gradients (audio encoder and every LM weight trainable) as the padded forward."""
    from omni_rl.training.forward import pack_rows

    path, model, fwd = _float64_family(family)
    if family == "text":
        batch = text_batch(seed=2)
    else:
        proc = load_processor(path, get_family(family))
        prompts = [mm_prompt(proc, k, seed=i) for i, k in enumerate(["audio", "text", "audio"])]
        batch = TrainBatch(prompts=prompts, sequences=random_sequences(3, 3, seed=7, max_len=12))
    lengths = [len(batch.prompts[s.prompt_index].prompt_ids) + len(s.response_ids) for s in batch.sequences]
    assert len(pack_rows(lengths, max(lengths))) < len(lengths)  # the packing really shares rows
    _assert_same_logp_and_grads(_loss_and_grads(model, fwd, batch, packing=True),
                                _loss_and_grads(model, fwd, batch))


@pytest.mark.parametrize("family", ["vl", "nemotron_omni"])
def test_packing_is_refused_where_positions_or_state_cross_sequences(family):
    fwd = get_family(family).forward(model=None)
    with pytest.raises(ValueError, match=f"{family}.*cannot pack sequences.*trainer.packing=false"):
        score(fwd, text_batch(seed=0), packing=True)
