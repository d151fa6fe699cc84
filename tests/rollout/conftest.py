"""A tiny Llama saved to disk, for the engines to load (built in well under a second)."""

from __future__ import annotations

import pytest

# head size 64: vLLM's CPU attention kernels take 32, 64, 80, 96, 112, 128, 256
TINY = dict(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256, max_length=128)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from r1pipeline.models.tiny import TinyModelConfig, build_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny_model")
    tok = build_tokenizer()
    build_model(TinyModelConfig(**TINY), tok, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def policy(tiny_dir):
    """A float32 copy of the tiny model, as a trainer would hold it."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir)

