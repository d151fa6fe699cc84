"""Decoding with finished rows dropped from the batch vs kept to the end, on a finished tiny run's models.

Run by hand: ``.venv/bin/python bench/decode_compaction.py --run runs/tiny [--models base,r1_zero,...]``.

The workload is the evaluate stage's main split as ``configs/tiny.yaml`` sets it: 256 held-out
questions of the run's seed under the ``r1_zero_short`` template, 8 samples each at T=0.6, top-p
0.95, up to 72 new tokens, in batches of 256, each row sampled from its own stream. Both
contenders are ``rollout/lean.py``'s loop in float32 on torch's threads; ``kept`` is the loop
before rows could leave (``compact=False``: every row is decoded until the batch's longest ends,
as HF ``generate`` does), ``compact`` lets them go. The two run interleaved, ``--reps`` timed
calls each after a warm-up, and must pick the same tokens: the script counts the completions
that differ and fails if any does. Printed per model: generated tokens, median seconds of each,
tokens/s and the ratio; the last line is the headline over all models. A model whose rows end
together (R1-Zero's chains are all ~41 tokens) gains little; one that mixes direct answers with
chains of thought (the base model) gains most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

MODELS = "base,r1_zero,cold_start_sft,sft,all_scenario_rl,student_base,distill,student_zero"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"), help="a finished tiny run directory")
    parser.add_argument("--models", default=MODELS, help=f"comma-separated stages (default {MODELS})")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1pipeline.machine import cpu_facts
    from r1pipeline.rollout.hf import encode, generate_ids
    from r1pipeline.stages.common import build_task
    from r1pipeline.tasks.templates import render

    facts = cpu_facts("cpu")
    print(f"CPU: {facts.cpu_model} ({os.cpu_count()} cores, {facts.cpu_class}), torch {torch.__version__} "
          f"on {torch.get_num_threads()} threads; run {args.run}; load average {os.getloadavg()[0]:.1f}")
    rows = build_task({"source": "tiny_product", "n_digits": 5}, ".").load("test", args.prompts, args.seed)
    prompts = [render("r1_zero_short", r["question"]) for r in rows]
    print(f"{'model':<16} {'tokens':>8} {'kept s':>8} {'compact s':>10} {'kept tok/s':>11} {'compact tok/s':>14} "
          f"{'ratio':>6} {'differ':>7}")
    totals = {"kept": 0.0, "compact": 0.0}
    for name in args.models.split(","):
        path = args.run / name / "model"
        if not path.is_dir():
            raise SystemExit(f"{path}: no model there; --run names a finished tiny run, --models its stages")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        ids = encode(tok, prompts)

        def call(compact: bool):
            return generate_ids(model, tok, ids, num_samples=args.k, temperature=0.6, top_p=0.95, max_new_tokens=72,
                                batch_size=256, seed=args.seed, compact=compact)

        call(True)  # warm-up
        times: dict[str, list[float]] = {"kept": [], "compact": []}
        outputs = {}
        for _ in range(args.reps):
            for label, compact in (("kept", False), ("compact", True)):
                start = time.perf_counter()
                outputs[label] = call(compact)
                times[label].append(time.perf_counter() - start)
        flat = {k: [c.token_ids for g in v for c in g] for k, v in outputs.items()}
        differ = sum(a != b for a, b in zip(flat["kept"], flat["compact"]))
        tokens = sum(len(t) for t in flat["compact"])
        kept, compact = statistics.median(times["kept"]), statistics.median(times["compact"])
        totals["kept"] += kept
        totals["compact"] += compact
        print(f"{name:<16} {tokens:>8} {kept:>8.2f} {compact:>10.2f} {tokens / kept:>11.0f} {tokens / compact:>14.0f} "
              f"{kept / compact:>5.2f}x {differ:>7}")
        if differ:
            raise SystemExit(f"{name}: {differ} completions differ between the two: dropping rows changed tokens")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    n = args.models.count(",") + 1
    print(f"decode_compaction: {totals['kept'] / totals['compact']:.2f}x faster evaluation decoding "
          f"({totals['kept']:.1f} s -> {totals['compact']:.1f} s over {n} model{'s' * (n > 1)}, same tokens)")


if __name__ == "__main__":
    main()
