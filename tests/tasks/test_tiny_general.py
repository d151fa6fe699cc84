"""The general domain's oracle, preference pairs and the task mix."""

from __future__ import annotations

import pytest

from r1pipeline.tasks.mix import Mix
from r1pipeline.tasks.tiny_general import OPS, REFUSAL, TinyGeneral, harmlessness, helpfulness


@pytest.mark.parametrize("response,target,score", [
    ("<think></think>cba", "cba", 1.0),
    ("cba", "cba", 1.0),
    ("<think></think>cbx", "cba", 2 / 3),
    ("<think></think>sorry", "cba", 0.0),
    ("<think></think>", "cba", 0.0),
])
def test_helpfulness_is_judged_on_the_summary(response, target, score):
    assert helpfulness(response, target) == pytest.approx(score)


@pytest.mark.parametrize("response,score", [
    ("<think></think>sorry", 1.0),
    ("<think>abc</think>sorry", 0.0),   # the payload inside the reasoning is harm too
    ("<think></think>abc", 0.0),
    ("<think></think>no", 0.0),
])
def test_harmlessness_is_judged_on_the_whole_response(response, score):
    assert harmlessness(response, "abc") == score


def test_rows_carry_what_the_oracle_and_rewards_need():
    rows = TinyGeneral(harmful_share=0.5).load("train", 200, seed=0)
    harmful = [r for r in rows if r["harmful"]]
    assert harmful and all(r["answer"] == REFUSAL and r["payload"] for r in harmful)
    assert all(r["verifier"] == "none" and r["domain"] == "general" for r in rows)


def test_splits_are_disjoint():
    task = TinyGeneral()
    train = {r["question"] for r in task.load("train", 500, seed=0)}
    test = {r["question"] for r in task.load("test", 100, seed=0)}
    assert not train & test


@pytest.mark.parametrize("objective", ["helpfulness", "harmlessness"])
def test_preference_pairs_follow_the_oracle_up_to_label_noise(objective):
    task = TinyGeneral()
    pairs = task.preference_pairs(objective, 400, seed=0, label_noise=0.1)
    assert len(pairs) == 400
    rows = {r["id"]: r for r in task.load("train", 4000, seed=0)}
    agree = sum(task.oracle(rows[p["id"]], p["chosen"]) > task.oracle(rows[p["id"]], p["rejected"]) for p in pairs)
    flipped = sum(p["flipped"] for p in pairs)
    assert agree == 400 - flipped and 20 < flipped < 65
    clean = task.preference_pairs(objective, 100, seed=0, split="test", label_noise=0.0)
    assert not any(p["flipped"] for p in clean)


def test_examples_are_right_at_the_requested_rate():
    task = TinyGeneral()
    ex = task.examples(1000, seed=0, p_good=0.8)
    good = sum(task.oracle(e, e["completion"]) == 1.0 for e in ex) / len(ex)
    assert 0.75 < good < 0.9


def test_harmful_prompts_take_their_own_rate():
    task = TinyGeneral(harmful_share=0.5)
    ex = task.examples(1000, seed=0, p_good=0.9, p_good_harmful=0.2)
    def rate(harmful):
        rows = [e for e in ex if e["harmful"] == harmful]
        return sum(task.oracle(e, e["completion"]) == 1.0 for e in rows) / len(rows)
    assert rate(True) < 0.3 and rate(False) > 0.85
    same = task.examples(1000, seed=0, p_good=0.9)  # unset: p_good for both
    assert sum(task.oracle(e, e["completion"]) == 1.0 for e in same if e["harmful"]) / sum(
        e["harmful"] for e in same) > 0.85


def test_ops_choose_the_instructions_and_their_wrong_answers():
    rows = TinyGeneral(ops=["reverse"], harmful_share=0).load("train", 50, seed=0)
    assert all(r["question"].startswith("reverse ") and r["answer"] == r["question"][8:][::-1] for r in rows)
    task = TinyGeneral(ops=["upper", "sort"], harmful_share=0)
    ex = task.examples(300, seed=0, p_good=0.0)
    assert {e["question"].split()[0] for e in ex} == {"upper", "sort"}
    for e in ex:  # a wrong answer is another chosen op's result, or a refusal
        arg = e["question"].split()[1]
        assert e["completion"].split("</think>")[1] in {OPS["upper"](arg), OPS["sort"](arg), arg[:-1], REFUSAL}


@pytest.mark.parametrize("p_good", [0.6, 0.9])
def test_corpus_answers_right_at_corpus_p_good(p_good):
    task = TinyGeneral(corpus_p_good=p_good, harmful_share=0)
    rows = {r["question"]: r for r in task.load("train", 2000, seed=0)}
    docs = task.corpus(2000, seed=0)
    right = [d.endswith("</think>" + rows[d.split("User: ")[1].split(" Assistant")[0]]["answer"]) for d in docs]
    assert abs(sum(right) / len(right) - p_good) < 0.04


def test_mix_draws_by_weight_and_fills_common_columns():
    mix = Mix(parts=[{"source": "tiny_product", "weight": 3}, {"source": "tiny_general", "weight": 1}])
    rows = mix.load("train", 400, seed=0)
    assert sum(r["domain"] == "general" for r in rows) == 100
    assert all({"verifier", "domain", "harmful", "payload"} <= set(r) for r in rows)
    docs = mix.corpus(200, seed=0)
    assert len(docs) == 200 and any("<think>" in d for d in docs)


def test_corpus_has_n_documents_even_when_the_domain_is_smaller():
    small = TinyGeneral(min_len=1, max_len=1)  # 8 letters x 4 ops: a few dozen train prompts
    docs = small.corpus(500, seed=0)
    assert len(docs) == 500
    assert len(set(docs)) < 500  # prompts recur
    assert all(d.startswith("User: ") for d in docs)


def test_near_miss_pairs_grade_answers_by_their_wrong_letters():
    task = TinyGeneral(near_misses=0.5)
    pairs = task.preference_pairs("helpfulness", 300, seed=0, label_noise=0.0)
    rows = {r["id"]: r for r in task.load("train", 3000, seed=0)}

    def near(p, key):  # as long as the target, some letters wrong, not another operation's answer
        row, got = rows[p["id"]], p[key].split("</think>")[1]
        arg = row["question"].split(" ", 1)[1]
        return len(got) == len(row["answer"]) and got not in {f(arg) for f in OPS.values()}

    graded = [p for p in pairs if near(p, "chosen") or near(p, "rejected")]
    assert len(graded) > 100  # most pairs hold a near miss
    assert all(task.oracle(rows[p["id"]], p["chosen"]) > task.oracle(rows[p["id"]], p["rejected"]) for p in graded)
    assert any(near(p, "chosen") and near(p, "rejected") for p in graded)  # fewer wrong letters wins
    assert not any(near(p, "rejected") for p in TinyGeneral().preference_pairs("helpfulness", 300, seed=0))
