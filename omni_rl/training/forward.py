"""Scoring forward: per-token log-probs of each rollout's response under the policy, per model family.

Two paths over a micro-batch (a `TrainBatch` whose sequences are rollouts of a few prompts):

* **encoder once** (default): for each unique prompt, the vision / audio encoders run ONCE on its media and the
  (M-RoPE) positions are computed ONCE on its prompt ids; then every rollout of that prompt gets the same features
  scattered into its `inputs_embeds` at the placeholder tokens and the same prompt positions (response positions
  continue after the last prompt position, as text tokens). The LM decoder runs on the padded batch and the LM head
  only on the positions that predict response tokens. Gradients reach the encoder once per prompt, summed over its
  rollouts, which is exactly the per-rollout gradient (the features are identical per rollout).
* **per rollout** (`encoder_once=False`, the reference): the plain HF forward of the whole model with the media
  tensors repeated for every rollout, i.e. G encoder forwards per prompt.

tests/training/test_forward.py checks both paths give the same logp and the same gradients (encoder trainable).

The family-specific pieces (embedding, encoders, positions, decoder, head) come from the family's `FamilyForward`
(`omni_rl.models.forward`; `ModelFamily.forward`, one subclass per family module in `omni_rl.models.families`).
Media placeholder tokens are only filled inside the prompt: a response that contains a placeholder id (the rollout
engine should ban them) is scored as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from omni_rl.models.forward import FamilyForward
from omni_rl.training.batch import TrainBatch

if TYPE_CHECKING:
    from omni_rl.models.families import ModelFamily

# mm_tensors keys shaped like the prompt's token ids ([1, L], e.g. Qwen2.5-VL's mm_token_type_ids) end with this:
# right-padded with 0 (= text), not concatenated, when batching rollouts.
TOKEN_SHAPED_SUFFIX = "token_type_ids"


@dataclass
class ScoreOutput:
    logp: Tensor  # [B, R] log-prob of each response token (0 where mask is 0), float32 (or float64)
    mask: Tensor  # [B, R] 1 for response tokens, same dtype as logp
    media_encoded: int  # media items (images + videos + audio clips) put through an encoder in this forward
    encoder_forwards: int = 0  # encoder calls: unique prompts with media (once) / rollouts with media (per rollout)


# ------------------------------------------------------------------------------------------------------ scoring
def score(fwd: FamilyForward, batch: TrainBatch, *, encoder_once: bool = True, temperature: float = 1.0,
          pad_id: int = 0, prompt_once: bool = False, packing: bool = False) -> ScoreOutput:
    """Per-token logp of every sequence's response tokens (logits / temperature, log-softmax in float32+).
    `prompt_once`: each unique prompt goes through the decoder once (`_selected_hidden_prompt_once`; implies
    encoder-once). `packing`: the encoder-once forward packs the micro-batch's sequences into as few rows as fit
    (`pack_rows`) instead of padding each to the longest (`_packed_decoder`); ignored with `prompt_once`."""
    if prompt_once and not fwd.prompt_once:
        raise ValueError(f"family {fwd.family!r} has no prompt-once forward ({fwd.prompt_once_missing}); "
                         "set trainer.prompt_once=false")
    if packing and not fwd.packing:
        raise ValueError(f"family {fwd.family!r} cannot pack sequences ({fwd.packing_missing}); "
                         "set trainer.packing=false")
    device = next(fwd.model.parameters()).device
    prompt_lens = [len(batch.prompts[s.prompt_index].prompt_ids) for s in batch.sequences]
    resp_lens = [len(s.response_ids) for s in batch.sequences]
    mms = [{k: v.to(device) for k, v in p.mm_tensors.items()} for p in batch.prompts]
    once_forwards = sum(1 for p_idx, _ in batch.groups() if fwd.count_media(mms[p_idx]))  # one per unique prompt
    if prompt_once:  # never builds the [B, prompt + response] rows
        sel, n_media = _selected_hidden_prompt_once(fwd, batch, mms, prompt_lens, resp_lens, pad_id, device)
        n_forwards = once_forwards
        mask = _response_index(prompt_lens, resp_lens, device)[1]
        logits = fwd.head(sel)  # [B, R, V]
        return _response_logp(logits, mask, batch, temperature, pad_id, device, n_media, n_forwards)
    rows = [batch.prompts[s.prompt_index].prompt_ids + s.response_ids for s in batch.sequences]
    input_ids, attention_mask = _pad(rows, pad_id, device)  # [B, T]
    if encoder_once:
        hidden, n_media = _hidden_encoder_once(fwd, batch, mms, input_ids, attention_mask, prompt_lens,
                                               packing=packing)
        n_forwards = once_forwards
        gather_idx, mask = _response_index(prompt_lens, resp_lens, device)  # [B, R]
        sel = hidden.gather(1, gather_idx[..., None].expand(-1, -1, hidden.shape[-1]))  # [B, R, H]
        logits = fwd.head(sel)  # [B, R, V]
    else:
        mm_rows = _collate_media([mms[s.prompt_index] for s in batch.sequences], input_ids.shape[1])
        n_media = sum(fwd.count_media(mms[s.prompt_index]) for s in batch.sequences)
        n_forwards = sum(1 for s in batch.sequences if fwd.count_media(mms[s.prompt_index]))
        position_ids = None
        if any(fwd.positions_per_prompt(mm) for mm in mms):  # HF's forward cannot batch them: positions per prompt
            ids = {p_idx: torch.tensor(batch.prompts[p_idx].prompt_ids, dtype=torch.long, device=device)
                   for p_idx, _ in batch.groups()}
            position_ids = _position_ids(batch, {p: fwd.positions(i, mms[p]) for p, i in ids.items()},
                                         prompt_lens, input_ids.shape)
        full = fwd.hf_logits(input_ids, attention_mask, mm_rows, position_ids)  # [B, T, V]
        gather_idx, mask = _response_index(prompt_lens, resp_lens, device)
        logits = full.gather(1, gather_idx[..., None].expand(-1, -1, full.shape[-1]))  # [B, R, V]
    return _response_logp(logits, mask, batch, temperature, pad_id, device, n_media, n_forwards)


def _response_logp(logits: Tensor, mask: Tensor, batch: TrainBatch, temperature: float, pad_id: int, device: Any,
                   n_media: int, n_forwards: int) -> ScoreOutput:
    """The ScoreOutput from the logits that predict each response token ([B, R, V])."""
    targets = _pad([s.response_ids for s in batch.sequences], pad_id, device)[0]  # [B, R]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)  # [B, R]
    mask = mask.to(logp.dtype)
    return ScoreOutput(logp=logp * mask, mask=mask, media_encoded=n_media, encoder_forwards=n_forwards)


def sequence_logp(model: Any, family: ModelFamily, batch: TrainBatch, *, encoder_once: bool = True,
                  temperature: float = 1.0, prompt_once: bool = False, packing: bool = False
                  ) -> tuple[list[Tensor], dict[str, int]]:
    """Functional form of `score`: ([logp [T_i] per sequence, in batch order], {"encoder_forwards", "media_encoded"}).
    Gradients flow through the returned tensors (wrap in `torch.no_grad()` to score only)."""
    out = score(family.forward(model), batch, encoder_once=encoder_once, temperature=temperature,
                prompt_once=prompt_once, packing=packing)
    rows = [out.logp[i, :len(s.response_ids)] for i, s in enumerate(batch.sequences)]
    return rows, {"encoder_forwards": out.encoder_forwards, "media_encoded": out.media_encoded}


def _encode_prompts(fwd: FamilyForward, batch: TrainBatch, mms: list[dict[str, Tensor]], device: Any
                    ) -> tuple[dict[int, list[tuple[int, Tensor]]], dict[int, Tensor | None], int]:
    """Per unique prompt: its media features (ONE encoder forward) and its positions (ONE rope-index computation);
    and the number of media items encoded."""
    features: dict[int, list[tuple[int, Tensor]]] = {}  # prompt index -> [(token id, features)]
    positions: dict[int, Tensor | None] = {}
    n_media = 0
    for p_idx, _ in batch.groups():
        features[p_idx] = fwd.encode(mms[p_idx])
        n_media += fwd.count_media(mms[p_idx])
        ids = torch.tensor(batch.prompts[p_idx].prompt_ids, dtype=torch.long, device=device)
        positions[p_idx] = fwd.positions(ids, mms[p_idx])
    return features, positions, n_media


def _prompt_embeds(fwd: FamilyForward, input_ids: Tensor, prompt_lens: Sequence[int], row_prompts: Sequence[int],
                   features: dict[int, list[tuple[int, Tensor]]]) -> Tensor:
    """Token embeddings of the rows, with each row's prompt media features at its placeholders (row b holds prompt
    `row_prompts[b]` in its first `prompt_lens[b]` tokens)."""
    embeds = fwd.embed(input_ids)  # [B, T, H]
    in_prompt = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] < torch.tensor(
        prompt_lens, device=input_ids.device)[:, None]  # [B, T]
    token_ids = sorted({tok for feats in features.values() for tok, _ in feats})
    for tok in token_ids:
        rows = [dict(features[p]).get(tok) for p in row_prompts]
        src = torch.cat([r for r in rows if r is not None], dim=0).to(embeds.dtype)  # [N_total, H]
        where = (input_ids == tok) & in_prompt  # [B, T]
        if int(where.sum()) != src.shape[0]:
            raise ValueError(f"{int(where.sum())} placeholder tokens {tok} in the prompts but {src.shape[0]} features")
        embeds = embeds.masked_scatter(where[..., None], src)
    return embeds


def _hidden_encoder_once(fwd: FamilyForward, batch: TrainBatch, mms: list[dict[str, Tensor]], input_ids: Tensor,
                         attention_mask: Tensor, prompt_lens: list[int], *, packing: bool = False
                         ) -> tuple[Tensor, int]:
    features, positions, n_media = _encode_prompts(fwd, batch, mms, input_ids.device)
    embeds = _prompt_embeds(fwd, input_ids, prompt_lens, [s.prompt_index for s in batch.sequences], features)
    position_ids = _position_ids(batch, positions, prompt_lens, input_ids.shape)
    if packing:
        if position_ids is not None:
            raise ValueError(f"family {fwd.family!r}: packing needs 1-D positions, these prompts have M-RoPE ones")
        return _packed_decoder(fwd, embeds, attention_mask.sum(1).tolist()), n_media
    out = fwd.decoder()(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=False)
    return out.last_hidden_state, n_media


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Sequence indices grouped into rows whose lengths sum to at most `capacity` (first fit, longest first); every
    index once. A sequence longer than `capacity` gets a row of its own."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def _packed_decoder(fwd: FamilyForward, embeds: Tensor, lengths: Sequence[int]) -> Tensor:
    """The decoder's last hidden states [B, T, H] for right-padded rows (`embeds` [B, T, H], `lengths` real tokens per
    row), computed on the sequences packed into `pack_rows(lengths, T)` rows: each sequence's positions restart at
    0 and no attention mask is given, so transformers masks attention to each sequence's own tokens (its packed-
    sequence mask); a row's unused tail is one more sequence whose output is dropped. Hidden states at padding
    positions come back as copies of row 0's first one (callers mask them)."""
    B, T, H = embeds.shape
    rows = pack_rows(lengths, T)
    src = torch.zeros(len(rows), T, dtype=torch.long)  # packed slot -> flat index into embeds [B * T]
    pos = torch.zeros(len(rows), T, dtype=torch.long)
    back = torch.zeros(B, T, dtype=torch.long)  # (row b, token t) -> flat index into the packed output
    for r, members in enumerate(rows):
        offset = 0
        for b in members:
            n = int(lengths[b])
            t = torch.arange(n)
            src[r, offset:offset + n] = b * T + t
            pos[r, offset:offset + n] = t
            back[b, :n] = r * T + offset + t
            offset += n
        pos[r, offset:] = torch.arange(T - offset)  # the unused tail: a separate sequence
    device = embeds.device
    packed = embeds.reshape(B * T, H)[src.reshape(-1).to(device)].reshape(len(rows), T, H)
    out = fwd.decoder()(inputs_embeds=packed, attention_mask=None, position_ids=pos.to(device), use_cache=False)
    return out.last_hidden_state.reshape(len(rows) * T, H)[back.reshape(-1).to(device)].reshape(B, T, H)


def _selected_hidden_prompt_once(fwd: FamilyForward, batch: TrainBatch, mms: list[dict[str, Tensor]],
                                 prompt_lens: list[int], resp_lens: list[int], pad_id: int, device: Any
                                 ) -> tuple[Tensor, int]:
    """([B, R, H] the hidden states that predict each response token, media encoded) with every prompt run through
    the decoder ONCE: pass 1 runs the unique prompts (right-padded, [P, Lp]) and keeps their keys / values; pass 2
    runs all responses ([B, R]) attending to their prompt's cached keys / values, gathered per row. The cache stays in
    the autograd graph, so each prompt's gradient is the sum over its rollouts: the same logp and gradients as the
    full forward, with the decoder seeing P * Lp + B * R tokens instead of B * (Lp + R)."""
    features, positions, n_media = _encode_prompts(fwd, batch, mms, device)
    uniq = [p_idx for p_idx, _ in batch.groups()]
    slot = {p: i for i, p in enumerate(uniq)}
    p_lens = [len(batch.prompts[p].prompt_ids) for p in uniq]
    p_ids, p_att = _pad([batch.prompts[p].prompt_ids for p in uniq], pad_id, device)  # [P, Lp]
    embeds = _prompt_embeds(fwd, p_ids, p_lens, uniq, features)
    prompt_pos = [positions[p] for p in uniq]
    p_position_ids = None
    if any(p is not None for p in prompt_pos):  # M-RoPE: [3, P, Lp]; padding positions are never attended to
        p_position_ids = torch.zeros(3, len(uniq), p_ids.shape[1], dtype=torch.long, device=device)
        for i, pos in enumerate(prompt_pos):
            p_position_ids[:, i, :p_lens[i]] = _as_3d(pos, p_lens[i], device)
    decoder = fwd.decoder()
    first = decoder(inputs_embeds=embeds, attention_mask=p_att, position_ids=p_position_ids, use_cache=True)
    cache = first.past_key_values
    rows = torch.tensor([slot[s.prompt_index] for s in batch.sequences], device=device)  # [B] prompt slot per row
    cache.reorder_cache(rows)  # index_select per layer: [P, ...] -> [B, ...], differentiable
    r_ids, r_att = _pad([s.response_ids for s in batch.sequences], pad_id, device)  # [B, R]
    R = r_ids.shape[1]
    if R == 0:
        return first.last_hidden_state[rows][:, :0], n_media
    steps = torch.arange(R, device=device)[None, :]
    if p_position_ids is None:
        lens = torch.tensor(p_lens, device=device)[rows]
        r_position_ids = lens[:, None] + steps  # [B, R]
    else:
        last = torch.stack([_as_3d(positions[s.prompt_index], p_lens[slot[s.prompt_index]], device)[:, -1]
                            for s in batch.sequences], dim=1)  # [3, B]
        r_position_ids = last[..., None] + 1 + steps[None]  # [3, B, R]
    second = decoder(inputs_embeds=fwd.embed(r_ids), attention_mask=torch.cat([p_att[rows], r_att], dim=1),
                     position_ids=r_position_ids, past_key_values=cache, use_cache=True)
    last_prompt = first.last_hidden_state[rows, torch.tensor(p_lens, device=device)[rows] - 1]  # [B, H]
    hidden = torch.cat([last_prompt[:, None], second.last_hidden_state[:, :R - 1]], dim=1)  # [B, R, H]
    return hidden, n_media


def _as_3d(pos: Tensor | None, length: int, device: Any) -> Tensor:
    """A prompt's positions as [3, L] (1-D positions on all three M-RoPE axes for a text-only prompt)."""
    if pos is None:
        pos = torch.arange(length, device=device)
    return pos if pos.dim() == 2 else pos[None].expand(3, -1)


def _position_ids(batch: TrainBatch, positions: dict[int, Tensor | None], prompt_lens: list[int],
                  shape: torch.Size) -> Tensor | None:
    """[3, B, T] (M-RoPE) from the per-prompt positions; responses continue after the prompt's last position."""
    if all(p is None for p in positions.values()):
        return None
    B, T = shape
    device = next(p for p in positions.values() if p is not None).device
    out = torch.ones(3, B, T, dtype=torch.long, device=device)
    for b, s in enumerate(batch.sequences):
        pos = positions[s.prompt_index]
        L = prompt_lens[b]
        pos = _as_3d(pos, L, device)  # a text-only prompt in a multimodal model: 1-D positions on all three axes
        R = len(s.response_ids)
        out[:, b, :L] = pos
        out[:, b, L:L + R] = pos[:, -1:] + torch.arange(1, R + 1, device=device)[None]
    return out


def _response_index(prompt_lens: Sequence[int], resp_lens: Sequence[int], device: Any) -> tuple[Tensor, Tensor]:
    """Positions whose logits predict each response token ([B, R], clamped to 0 on padding) and the mask."""
    R = max(resp_lens, default=0)
    t = torch.arange(R, device=device)[None, :]  # [1, R]
    lp = torch.tensor(prompt_lens, device=device)[:, None]
    lr = torch.tensor(resp_lens, device=device)[:, None]
    mask = t < lr  # [B, R]
    idx = torch.where(mask, lp - 1 + t, torch.zeros_like(t))
    return idx, mask


def _pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Tensor, Tensor]:
    T = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        att[i, :len(r)] = 1
    return ids.to(device), att.to(device)


def _collate_media(mms: Sequence[dict[str, Tensor]], seq_len: int) -> dict[str, Tensor]:
    """One media dict for a batch of rows (each row's prompt media repeated): concatenated along dim 0 (padded in
    dim 1 where the prompts' lengths differ); token-shaped keys ([1, L]) right-padded to `seq_len` with zeros and
    stacked."""
    keys = sorted({k for mm in mms for k in mm})
    out: dict[str, Tensor] = {}
    for k in keys:
        if k.endswith(TOKEN_SHAPED_SUFFIX):
            rows = []
            for mm in mms:
                v = mm.get(k)
                row = torch.zeros(seq_len, dtype=torch.long, device=v.device if v is not None else None)
                if v is not None:
                    row[:v.shape[-1]] = v.reshape(-1)
                rows.append(row)
            out[k] = torch.stack(rows)
        else:
            out[k] = _cat_padded([mm[k] for mm in mms if k in mm])
    return out


def _cat_padded(parts: Sequence[Tensor]) -> Tensor:
    """Concatenated along dim 0; parts that differ only in dim 1 (audio features padded to each prompt's own longest
    clip, e.g. Parakeet's, and their masks) are first right-padded there with zeros (False)."""
    if len({p.shape[1:] for p in parts}) > 1 and len({(p.dim(), p.shape[2:]) for p in parts}) == 1:
        n = max(p.shape[1] for p in parts)
        parts = [torch.nn.functional.pad(p, (0, 0) * (p.dim() - 2) + (0, n - p.shape[1])) for p in parts]
    return torch.cat(list(parts), dim=0)
