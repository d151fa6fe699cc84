"""The evaluation protocol's arithmetic on hand-made samples."""

from __future__ import annotations

from r1pipeline.rollout.hf import Completion
from r1pipeline.stages.evaluate import bootstrap_ci, majority, score_model, score_samples


def scored(groups: list[list[str]], answer: str = "4"):
    rows = [{"id": f"q{i}", "answer": answer, "verifier": "exact"} for i in range(len(groups))]
    comps = [[Completion(t, len(t), False) for t in g] for g in groups]
    return score_samples(rows, comps)


def ok(a: str) -> str:
    return f"<think>x</think><answer>{a}</answer>"


def test_pass_at_1_is_the_mean_correctness_over_samples():
    m = score_model(scored([[ok("4"), ok("4"), ok("1"), ok("2")], [ok("1")] * 4]), bootstrap=200, seed=0)
    assert m["pass@1"] == (0.5 + 0.0) / 2
    assert m["pass@k"] == 0.5


def test_cons_at_k_takes_the_majority_answer():
    # two of four samples agree on the right answer, the other two disagree with each other
    m = score_model(scored([[ok("4"), ok("1"), ok("4"), ok("2")]]), bootstrap=200, seed=0)
    assert m["pass@1"] == 0.5 and m["cons@k"] == 1.0


def test_cons_at_k_is_wrong_when_the_majority_is_wrong():
    m = score_model(scored([[ok("1"), ok("1"), ok("4"), "no answer"]]), bootstrap=200, seed=0)
    assert m["cons@k"] == 0.0


def test_answers_without_tags_are_wrong_and_unformatted():
    m = score_model(scored([["4", "4"]]), bootstrap=10, seed=0)
    assert m["pass@1"] == 0.0 and m["format_rate"] == 0.0 and m["cot_rate"] == 0.0


def test_majority_ignores_missing_answers_and_breaks_ties_by_first_seen():
    assert majority([None, "3", " 3", "5"]) == "3"
    assert majority(["5", "3"]) == "5"
    assert majority([None, None]) is None


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_prompts():
    small = bootstrap_ci([0.0, 1.0] * 10, n=500, seed=0)
    large = bootstrap_ci([0.0, 1.0] * 500, n=500, seed=0)
    assert small[0] < 0.5 < small[1]
    assert (large[1] - large[0]) < (small[1] - small[0])


def test_a_last_number_task_reads_prose_answers_for_pass_and_majority():
    rows = [{"id": "q0", "answer": "12", "verifier": "exact", "answer_from": "last_number"}]
    texts = ["5 + 7 = 12.", "It is 12", "5 + 7 = 13", "<think>12</think><answer>12</answer>"]
    m = score_model(score_samples(rows, [[Completion(t, 3, False) for t in texts]]), bootstrap=10, seed=0)
    assert m["pass@1"] == 0.75 and m["cons@k"] == 1.0
    assert m["format_rate"] == 0.25  # the format is still the R1 one: reading prose does not make it formatted
