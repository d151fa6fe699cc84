"""bench/decode_compaction.py on a run directory holding a random tiny model: it runs, compares and prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_decode_compaction", ROOT / "bench" / "decode_compaction.py")
bench = sys.modules["bench_decode_compaction"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_bench_prints_a_row_per_model_and_the_headline(tmp_path: Path, monkeypatch, capsys):
    from r1pipeline.models.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    model = build_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                        max_length=128), tok, seed=0)
    model.save_pretrained(tmp_path / "base" / "model")
    tok.save_pretrained(tmp_path / "base" / "model")
    monkeypatch.setattr(sys, "argv", ["decode_compaction.py", "--run", str(tmp_path), "--models", "base",
                                      "--prompts", "6", "--k", "8", "--reps", "1"])
    bench.main()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("base "))
    assert row.split()[-1] == "0", "the same tokens with and without rows leaving"
    assert out.splitlines()[-1].startswith("decode_compaction: ") and "over 1 model, same tokens" in out
