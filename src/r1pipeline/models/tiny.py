"""Tiny models built from a config: a character-level tokenizer and a small Llama.

The tokenizer maps each character to one token (printable ASCII plus a few extra characters,
such as the CJK ones the embedded world's second language uses) and adds the four R1 tags as
ordinary tokens: one token each, and kept by ``decode(..., skip_special_tokens=True)``, which
is how TRL decodes completions before the rewards read them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from r1pipeline.rewards.parse import TAGS

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
# The embedded world's second language (see tasks/tiny_world.py) writes its steps with these.
EXTRA_CHARS = "乘得是所以答案"


class TinyModelConfig(BaseModel):
    """Shape of a tiny Llama (defaults: about 1.06M parameters with the char vocabulary)."""

    model_config = ConfigDict(extra="forbid")
    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    intermediate_size: int = Field(512, gt=0)
    max_length: int = Field(128, gt=0, description="context length in tokens (characters)")


def alphabet(extra: str = EXTRA_CHARS) -> list[str]:
    return [chr(c) for c in range(32, 127)] + list(dict.fromkeys(extra))


def build_tokenizer(extra: str = EXTRA_CHARS):
    """A character-level ``PreTrainedTokenizerFast`` with the R1 tags as single tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([PAD, BOS, EOS, UNK, *alphabet(extra)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([PAD, BOS, EOS, UNK])
    tok.add_tokens(list(TAGS))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, unk_token=UNK, padding_side="left",
                                   model_max_length=4096)


def build_model(cfg: TinyModelConfig, tokenizer, seed: int):
    """A freshly initialised Llama with tied embeddings, sized by ``cfg``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(f"hidden_size {cfg.hidden_size} must be divisible by num_heads {cfg.num_heads}")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_length,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
