"""Rewards and builders the tests share; importable by the guard's worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path


def misbehaving_reward(completions: list[str], **_) -> list[float]:
    """len(c), except: "hang" sleeps for ten minutes, "die" kills its process, "boom" raises."""
    out = []
    for c in completions:
        if "hang" in c:
            time.sleep(600)
        if "die" in c:
            os._exit(3)
        if "boom" in c:
            raise RuntimeError("boom")
        out.append(float(len(c)))
    return out


misbehaving_reward.may_hang = True


def guarded_hang_in_pool_worker(completion: str) -> tuple[list, dict]:
    """Score one completion with a guard created inside a (daemonic) pool worker."""
    from r1pipeline.rewards.safe import guard

    with guard(misbehaving_reward, timeout_s=1.0, on_error=-1.0) as g:
        return g([completion, "a"]), g.stats


def save_tiny_reward_model(path: Path) -> Path:
    """A randomly initialised one-layer Llama with a one-output score head, and a byte-level
    tokenizer (any text encodes), saved as a Hugging Face directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    vocab.update({"<pad>": len(vocab), "<eos>": len(vocab) + 1})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      num_labels=1, pad_token_id=vocab["<pad>"])
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path
