"""Packed pretraining batches compute what padded ones do, on fewer positions."""

import pytest
import torch

from r1pipeline import attention
from r1pipeline.models.tiny import TinyModelConfig, build_model, build_tokenizer
from r1pipeline.stages.pretrain import encode_batch, pack_batch, pack_rows
from r1pipeline.tasks.tiny_world import TinyProduct

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=128)


@pytest.fixture(scope="module")
def docs():
    return TinyProduct(n_digits=5).corpus(48, seed=0, p_second_language=0.3)


def test_rows_hold_whole_documents_within_the_width():
    lengths = [70, 30, 41, 12, 69, 58, 5]
    rows = pack_rows(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert len(rows) == 3  # 285 tokens need at least 3 rows of 128


def test_packed_loss_and_gradients_equal_the_padded_batch(docs):
    tok = build_tokenizer()
    model = build_model(SMALL, tok, seed=0)
    ids, mask, labels = encode_batch(tok, docs, 128)
    padded = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    padded.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    p_ids, p_labels, positions, p_mask = pack_batch(tok, docs, 128)
    packed = model(input_ids=p_ids, attention_mask=p_mask, position_ids=positions, labels=p_labels).loss
    packed.backward()
    assert packed.item() == pytest.approx(padded.item(), rel=1e-5)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    assert p_ids.numel() < 0.8 * ids.numel()  # fewer positions computed
    assert int((p_labels != -100).sum()) == int((labels[:, 1:] != -100).sum())  # the same targets


def test_a_document_never_attends_to_its_row_neighbour(docs):
    tok = build_tokenizer()
    _, _, positions, mask = pack_batch(tok, docs, 128)
    row = 0
    starts = (positions[row] == 0).nonzero().flatten().tolist()
    assert len(starts) >= 2
    second = starts[1]
    assert not mask[row, 0, second, :second].any()  # the second document's first token sees nothing before it
    assert mask[row, 0, second, second]


def test_eager_and_sdpa_compute_the_same_packed_loss(docs):
    tok = build_tokenizer()
    model = build_model(SMALL, tok, seed=0)
    ids, labels, positions, mask = pack_batch(tok, docs, 128)
    logits = {}
    for impl in ("sdpa", "eager"):
        model.set_attn_implementation(impl)
        logits[impl] = model(input_ids=ids, attention_mask=attention.mask_for(impl, mask),
                             position_ids=positions).logits
    real = labels != -100
    torch.testing.assert_close(logits["eager"][real], logits["sdpa"][real], rtol=1e-4, atol=1e-5)
    # the trap mask_for exists for: eager adds a boolean mask to the scores, so every token attends everywhere
    leaky = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    assert (leaky[real] - logits["sdpa"][real]).abs().max() > 1e-2


def test_the_chosen_kernel_trains_is_recorded_and_is_not_saved(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    import r1pipeline.models.tiny as tiny
    from r1pipeline.stages import pretrain
    from r1pipeline.stages.base import StageContext

    built, seen = [], []
    build, pack = tiny.build_model, pretrain.pack_batch
    monkeypatch.setattr(tiny, "build_model", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    monkeypatch.setattr(pretrain, "pack_batch",
                        lambda *a, **k: seen.append(built[-1].config._attn_implementation) or pack(*a, **k))
    cfg = pretrain.Config(name="base", kind="pretrain", model=SMALL, steps=3, batch_size=8, warmup_steps=1,
                          attention="eager")
    ctx = StageContext(name="base", dir=tmp_path / "base", run_dir=tmp_path, seed=0)
    pretrain.run(cfg, ctx, str(tmp_path))
    assert seen[1:] == ["eager"] * 3  # each training step (the first batch packed is the choice's own)
    assert ctx.precision["attention"]["impl"] == "eager"
    assert AutoModelForCausalLM.from_pretrained(ctx.model_dir).config._attn_implementation == "sdpa"


def test_attention_auto_keeps_the_hash_of_earlier_runs():
    from r1pipeline.stages import pretrain

    auto = pretrain.Config(name="base", kind="pretrain")
    assert "attention" not in auto.hashed_config()
    assert pretrain.Config(name="base", kind="pretrain", attention="eager").hashed_config()["attention"] == "eager"
