"""bench/grpo_step.py on a random tiny model: TRL's GRPO steps run, split into parts that add up to the step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_grpo_step", ROOT / "bench" / "grpo_step.py")
bench = sys.modules["bench_grpo_step"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_mean_step_skips_the_first_step_and_keeps_the_sync_out_of_generation():
    import doctest

    assert doctest.testmod(bench).failed == 0
    one = bench.mean_step([{"total": 3.0, "backward": 1.0}])
    assert one["backward"] == 1.0 and one["other"] == 2.0, "a single step is its own mean"


def test_the_bench_runs_a_local_model_on_a_task_and_prints_the_parts(tmp_path: Path, monkeypatch, capsys):
    from r1pipeline.models.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    model = build_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                        max_length=128), tok, seed=0)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(sys, "argv", ["grpo_step.py", "--model", str(tmp_path / "model"), "--task",
                                      "{source: tiny_product, n_digits: 3}", "--template", "r1_zero_short",
                                      "--prompts", "2", "--g", "2", "--tokens", "6", "--beta", "0",
                                      "--engines", "hf", "--steps", "2", "--threads", "1"])
    bench.main()
    lines = capsys.readouterr().out.splitlines()
    shares = {line.split(":")[0].strip(): float(line.split()[-1].rstrip("%")) for line in lines
              if line.startswith("  ") and line.rstrip().endswith("%")}
    assert set(shares) == set(bench.PARTS)
    assert abs(sum(shares.values()) - 100) < 0.5, "the parts add up to the step"
    assert lines[-1].startswith("hf -> hf: step ") and "generation" in lines[-1]
