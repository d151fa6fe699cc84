"""Writes tiny_cold_start.jsonl: the embedded world's curated cold-start examples.

The paper's cold start includes human-edited, readable chains of thought. Here they are
correct, English-only worked solutions of training questions in the R1 output format (the
reasoning, then a summary that states the answer). Run from the repository root:
``.venv/bin/python configs/data/make_tiny_cold_start.py``.
"""

import json
import random
from pathlib import Path

from r1pipeline.stages.filters import rewrite_r1
from r1pipeline.tasks.tiny_world import TinyProduct

SUMMARY = "<answer>{answer}</answer> is the answer."  # keep in step with configs/tiny.yaml


def main(n: int = 64, out: Path = Path(__file__).with_name("tiny_cold_start.jsonl")) -> None:
    task, rng = TinyProduct(), random.Random(7)
    with out.open("w") as f:
        for row in task.load("train", n, seed=12345):
            steps, answer = task.steps([int(c) for c in row["question"].split("*")], rng)
            assert answer == row["answer"]
            completion = rewrite_r1(f"<think>{steps}</think>", answer, SUMMARY)
            f.write(json.dumps({"id": row["id"], "question": row["question"], "answer": answer,
                                "completion": completion}) + "\n")


if __name__ == "__main__":
    main()
