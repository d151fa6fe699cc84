"""The lean decoding loop: the model's own forward pass, so the same logits and tokens as HF ``generate``."""

from __future__ import annotations

import pytest

from r1pipeline.rollout import lean
from r1pipeline.rollout.hf import generate_ids
from tests.rollout.helpers import force_token, token_ids

PROMPTS = ["User: 3*4*7 Assistant: ", "User: 2*2 Assistant: <think>", "Hi"]  # three lengths: left padding


@pytest.fixture(scope="module")
def tok():
    from r1pipeline.models.tiny import build_tokenizer

    return build_tokenizer()


def llama(tok, **overrides):
    """A random Llama in float32; grouped-query attention when ``num_key_value_heads`` is set."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=128, max_position_embeddings=128, tie_word_embeddings=True,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(LlamaConfig(**{**cfg, **overrides})).eval()


def ids(tok, prompts=PROMPTS):
    return [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_step_logits_match_the_full_forward(tok, kv_heads):
    import torch

    model = llama(tok, num_key_value_heads=kv_heads)
    prompt = torch.tensor(ids(tok)[:1])
    seen = []

    def pick(logits, rows):
        seen.append(logits.clone())
        return logits.argmax(-1)

    with torch.inference_mode():
        new = lean.decode(model, prompt, torch.ones_like(prompt), max_new_tokens=12, pick=pick,
                          eos={tok.eos_token_id}, pad_id=tok.pad_token_id, ignore_eos=True)
        full = model(torch.cat([prompt, new], 1)).logits[0, prompt.shape[1] - 1:-1]  # (12, V)
        full[:, tok.eos_token_id] = float("-inf")  # ignore_eos: never picked
    assert new.shape == (1, 12)
    torch.testing.assert_close(torch.stack([s[0] for s in seen]), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize("greedy", [True, False])
def test_same_tokens_as_hf_generate_with_left_padding(tok, kv_heads, greedy):
    model = llama(tok, num_key_value_heads=kv_heads)
    kwargs = dict(num_samples=3, max_new_tokens=24, greedy=greedy, temperature=0.9, top_p=0.95, seed=7)
    ours = generate_ids(model, tok, ids(tok), **kwargs)
    theirs = generate_ids(model, tok, ids(tok), lean_decode=False, **kwargs)
    assert token_ids(ours) == token_ids(theirs)
    assert [[c.text for c in g] for g in ours] == [[c.text for c in g] for g in theirs]


def test_rows_stop_at_end_of_sequence_and_ignore_eos_runs_to_the_limit(tok):
    model = llama(tok)
    handle = force_token(model, tok.eos_token_id, 1e4)  # every row ends at once
    try:
        ended = generate_ids(model, tok, ids(tok), max_new_tokens=10, greedy=True)
        forced = generate_ids(model, tok, ids(tok), max_new_tokens=10, greedy=True, ignore_eos=True)
    finally:
        handle.remove()
    assert all(c.n_tokens == 1 and not c.truncated and c.token_ids == (tok.eos_token_id,) for g in ended for c in g)
    assert all(c.n_tokens == 10 and c.truncated and tok.eos_token_id not in c.token_ids for g in forced for c in g)


def ends_at(steps: list[int], eos: int, then):
    """A ``pick`` that ends batch row ``r`` at its step ``steps[r]`` (0-based) and otherwise asks ``then``
    (never for end-of-sequence); it records the rows each step saw."""
    import torch

    seen_rows, step = [], [0]

    def pick(logits, rows):
        seen_rows.append(rows.tolist())
        logits = logits.clone()
        logits[:, eos] = float("-inf")
        token = then(logits, rows)
        due = torch.tensor([steps[r] == step[0] for r in rows.tolist()])
        step[0] += 1
        return torch.where(due, torch.full_like(token, eos), token)

    return pick, seen_rows


@pytest.mark.parametrize("greedy", [True, False])
def test_finished_rows_leave_the_batch_and_change_no_token(tok, greedy, monkeypatch):
    """Rows that end early are gathered out of the batch (caches too) and every other row's tokens,
    greedy or sampled from its own stream, are those of a batch that kept them all."""
    import torch

    monkeypatch.setattr(lean, "MIN_ROWS", 3)  # a batch of 9 shrinks, down to no fewer than 3 rows

    from r1pipeline.rollout.hf import SeededSampler, _left_pad

    eos = tok.eos_token_id
    model = llama(tok, num_key_value_heads=2)
    prompts = ids(tok) * 3  # 9 rows, three prompt lengths
    input_ids, mask = _left_pad(prompts, tok.pad_token_id)
    steps = [0, 1, 1, 2, 5, 5, 7, 12, 19]  # the step each row ends at; the last runs to the limit
    runs = []
    for compact in (True, False):
        then = (lambda logits, rows: logits.argmax(-1)) if greedy else SeededSampler(range(9), 0.9, 0.95).pick
        pick, seen_rows = ends_at(steps, eos, then)
        with torch.inference_mode():
            new = lean.decode(model, input_ids, mask, max_new_tokens=16, pick=pick, eos={eos},
                              pad_id=tok.pad_token_id, compact=compact)
        runs.append((new, seen_rows))
    (kept, kept_rows), (full, full_rows) = runs
    assert torch.equal(kept, full)
    assert [row.tolist().index(eos) if eos in row.tolist() else None for row in kept] == \
        [0, 1, 1, 2, 5, 5, 7, 12, None]
    assert all(rows == list(range(9)) for rows in full_rows)
    assert 3 <= len(kept_rows[-1]) < 9 and kept_rows[-1][-1] == 8  # rows left; the survivors kept their indices
    assert all(set(later) <= set(earlier) for earlier, later in zip(kept_rows, kept_rows[1:]))


def test_supports_only_plain_rotary_decoders_on_the_cpu(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    assert lean.supports(llama(tok))
    assert not lean.supports(llama(tok, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}))
    assert not lean.supports(GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=len(tok))))


def test_grpo_engine_hf_decodes_on_the_policy_itself(tiny_dir, policy):
    """engine: hf hands TRL a rollout hook that serves the policy module (no copy, no weight sync,
    its training mode kept); with LoRA it leaves generation to TRL."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from r1pipeline.stages.grpo import _rollout_hook

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    policy.train()
    hook = _rollout_hook(SimpleNamespace(engine="hf", lora=None), tiny_dir, None, policy, tokenizer)
    engine = hook._make()
    assert engine.model is policy and policy.training
    assert _rollout_hook(SimpleNamespace(engine="hf", lora=object()), tiny_dir, None, policy, tokenizer) is None
