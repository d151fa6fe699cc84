"""Packed pretraining batches compute what padded ones do, on fewer positions."""

import pytest
import torch

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
