"""A lean decoding loop for small Llama-family models on the CPU: HF ``generate`` without its overheads.

At the tiny world's size (1M parameters, 64 sequences at once) a decoding step's arithmetic is a
fraction of a millisecond, and Hugging Face ``generate`` spends ~10 ms a step elsewhere: more than
half of it in ``DynamicCache``'s ``torch.cat`` (every step copies the whole cache of every layer
again, so a step costs more the longer the completion), most of the rest in per-step Python and
a flash-attention kernel sized for long queries. This loop runs the model's own modules (its
embeddings, norms, projections, MLPs and rotary table) with a key/value cache allocated once for
the whole completion and written in place, and attention as two small matmuls over the filled
part of the cache. ``bench/rollout.py --generate`` measures it against ``generate``.

What it computes is the model's forward pass, so logits agree with HF's to float rounding
(``tests/rollout/test_lean.py``) and greedy completions are the same tokens; positions follow
``generate``'s convention for left padding (``cumsum(mask) - 1``). Sampling is the caller's: a
``pick(logits, rows)`` callable turns each step's float32 logits into token ids, so HF's engine
and this loop share ``SeededSampler`` and draw the same tokens from the same logits.

Rows that have ended leave the batch: once a quarter of the rows still in it are done, the rest
are gathered into a smaller batch (caches included), so a batch whose lengths differ (a base model's
direct answers beside its chains of thought) stops paying for its finished rows. Each row's
arithmetic and random stream are its own, so this changes no token (``tests/rollout/test_lean.py``).

``supports(model)`` says whether a model can take this path (Llama, Mistral without a sliding
window, Qwen2; plain rotary embeddings; on the CPU); everything else uses ``generate``.
"""

from __future__ import annotations

from typing import Callable

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
# Finished rows leave the batch once they are a quarter of it, while it has more than 32 rows (below
# that a step costs about the same whatever its rows). On 2 AVX2-capped Zen 4 cores, evaluating the tiny
# world's base model: 1.72-1.76x for any of (1/4 or 1/2, 0 to 64 rows); R1-Zero and the final model,
# whose rows end together: 0.99-1.06x (bench/decode_compaction.py).
LEAVE = 0.25
MIN_ROWS = 32


def supports(model) -> bool:
    """Whether ``decode`` can run ``model``: a supported decoder with plain rotary embeddings, on the CPU."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return False
    rope = getattr(cfg, "rope_scaling", None) or getattr(cfg, "rope_parameters", None) or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type", "default")) != "default":
        return False
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return False
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not hasattr(inner, "rotary_emb") or not hasattr(inner, "embed_tokens"):
        return False
    attn = getattr(layers[0], "self_attn", None)
    if attn is None or not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj", "scaling")):
        return False
    return next(model.parameters()).device.type == "cpu"


def decode(model, input_ids, attention_mask, *, max_new_tokens: int, pick: Callable, eos: set[int],
           pad_id: int, ignore_eos: bool = False, compact: bool = True):
    """(B, T_new) generated ids after the left-padded prompts ``input_ids`` / ``attention_mask``.

    Each step's logits go through ``pick(logits, rows)`` (greedy or sampling): ``logits`` (b, V) are
    those of the rows still decoding, ``rows`` (b,) their indices in the batch. A row that has
    emitted an end-of-sequence token is padded with ``pad_id`` from then on, and decoding stops
    when every row has ended. ``compact``: finished rows leave the batch (see the module's
    docstring; False keeps every row to the end). ``ignore_eos``: end-of-sequence tokens are never
    picked (exactly ``max_new_tokens`` each). Call under ``torch.inference_mode()``.
    """
    import torch

    inner = model.model
    cfg = model.config
    batch, prompt_len = input_ids.shape
    total = prompt_len + max_new_tokens
    layers = inner.layers
    attn0 = layers[0].self_attn
    head_dim = attn0.head_dim
    kv_heads = cfg.num_key_value_heads or cfg.num_attention_heads
    groups = cfg.num_attention_heads // kv_heads
    dtype = inner.embed_tokens.weight.dtype

    # caches written in place; keys stored transposed, (layers, B, kv_heads, head_dim, total), which
    # makes the scores' batched matmul 2.4x faster at the tiny world's shapes (64 rows, 4 heads of 32)
    keys = torch.zeros(len(layers), batch, kv_heads, head_dim, total, dtype=dtype)
    values = torch.zeros(len(layers), batch, kv_heads, total, head_dim, dtype=dtype)
    # additive key mask: left padding and not-yet-written slots hidden; finfo.min, not -inf, so that a
    # padding row (every key hidden) stays finite
    hidden_bias = torch.finfo(dtype).min
    key_bias = torch.full((batch, total), hidden_bias, dtype=dtype)
    key_bias[:, :prompt_len].masked_fill_(attention_mask.bool(), 0.0)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P): generate's convention
    cos_table, sin_table = inner.rotary_emb(values[0, :, 0], torch.arange(total).unsqueeze(0))  # (1, total, D)
    cos_table, sin_table = cos_table[0], sin_table[0]
    eos_ids = torch.tensor(sorted(eos), dtype=torch.long)

    def forward(ids, pos, start: int):
        """Hidden states of the new tokens ``ids`` (b, S) at positions ``pos`` (b, S), cache slots from ``start``."""
        rows, steps = ids.shape
        end = start + steps
        cos, sin = cos_table[pos].unsqueeze(1), sin_table[pos].unsqueeze(1)  # (b, 1, S, D)
        bias = key_bias[:, None, None, :end]  # (b, 1, 1, end)
        if steps > 1:  # prefill: causal within the new tokens
            causal = torch.full((steps, end), hidden_bias, dtype=dtype).triu(start + 1)
            bias = bias + causal
        h = inner.embed_tokens(ids)
        for i, layer in enumerate(layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(rows, steps, -1, head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(rows, steps, -1, head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(rows, steps, -1, head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            keys[i, :, :, :, start:end] = (k * cos + _rotate_half(k) * sin).transpose(-1, -2)
            values[i, :, :, start:end] = v
            q = q.reshape(rows, kv_heads, groups * steps, head_dim)
            scores = torch.matmul(q, keys[i, :, :, :, :end]) * attn.scaling  # (b, KV, g*S, end)
            scores = scores.view(rows, kv_heads * groups, steps, end) + bias
            weights = scores.float().softmax(-1).to(dtype).view(rows, kv_heads, groups * steps, end)
            out = torch.matmul(weights, values[i, :, :, :end]).view(rows, -1, steps, head_dim)
            h = h + attn.o_proj(out.transpose(1, 2).reshape(rows, steps, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return inner.norm(h[:, -1:])

    def next_ids(hidden, rows):
        logits = model.lm_head(hidden)[:, -1].float()
        if ignore_eos:
            logits[:, eos_ids] = float("-inf")
        return pick(logits, rows)

    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long)
    live = torch.arange(batch)  # the batch rows still in the caches, in order
    done = torch.zeros(batch, dtype=torch.bool)  # per live row
    token = next_ids(forward(input_ids, positions, 0), live)
    pos = positions[:, -1:]
    for t in range(max_new_tokens):
        token = torch.where(done, torch.full_like(token, pad_id), token)
        out[live, t] = token
        done |= torch.isin(token, eos_ids)
        if t + 1 == max_new_tokens or bool(done.all()):
            return out[:, :t + 1]
        slot = prompt_len + t
        if compact and len(live) > MIN_ROWS and int(done.sum()) >= LEAVE * len(live):
            keep = ~done
            end = slot  # cache slots written so far
            keys = _gather_rows(keys, keep, end, dim=4)
            values = _gather_rows(values, keep, end, dim=3)
            key_bias, pos, token, live, done = key_bias[keep], pos[keep], token[keep], live[keep], done[keep]
        key_bias[:, slot] = 0.0
        pos = pos + 1
        token = next_ids(forward(token[:, None], pos, slot), live)
    return out


def _gather_rows(cache, keep, end: int, dim: int):
    """A new cache holding the rows ``keep`` (dim 1) of ``cache``; only its first ``end`` slots on ``dim`` are copied
    (the rest are never read before they are written)."""
    import torch

    shape = list(cache.shape)
    shape[1] = int(keep.sum())
    fresh = torch.empty(shape, dtype=cache.dtype)
    index = [slice(None)] * cache.dim()
    index[dim] = slice(0, end)
    fresh[tuple(index)] = cache[tuple(index)][:, keep]
    return fresh


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
