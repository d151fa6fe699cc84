"""reasoning-gym tasks: seeded, split without overlap, checked by each dataset's own scorer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from r1pipeline.rewards.verify import SLOW_VERIFIERS, VERIFIERS, verify
from r1pipeline.tasks import registry
from r1pipeline.tasks.reasoning_gym import ReasoningGymSource, needs_entry

ARITH = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2, "operators": ["+", "-"]}


@pytest.fixture(scope="module")
def source():
    return registry.build({"source": "reasoning_gym", "datasets": {
        "basic_arithmetic": ARITH, "products": {"max_digits": 2}, "countdown": {}}})


@pytest.fixture(scope="module")
def splits(source):
    return source.load("train", 60, seed=0), source.load("test", 15, seed=0)


def test_rows_have_the_registry_columns(splits):
    for row in splits[0] + splits[1]:
        assert set(row) == {"id", "question", "answer", "verifier", "answer_from"}
        assert row["verifier"] in VERIFIERS and row["id"].startswith(row["verifier"])


def test_train_and_test_never_share_a_question(source, splits):
    train, test = splits
    more_train = source.load("train", 200, seed=1)
    questions = {r["question"] for r in test}
    assert len(questions) == 15 and len({r["question"] for r in train}) == 60
    assert not questions & {r["question"] for r in train + more_train}


def test_same_seed_same_items_other_seed_other_items(source, splits):
    assert source.load("train", 60, seed=0) == splits[0]
    assert source.load("train", 60, seed=7) != splits[0]


def test_weights_share_items_between_datasets():
    src = ReasoningGymSource(datasets={"basic_arithmetic": ARITH, "products": {}},
                             weights={"basic_arithmetic": 3, "products": 1})
    kinds = [r["verifier"] for r in src.load("train", 20, seed=0)]
    assert kinds.count("rg:basic_arithmetic") == 15 and kinds.count("rg:products") == 5


@pytest.mark.parametrize("dataset, wrong", [("basic_arithmetic", "1000"), ("products", "-1"),
                                            ("countdown", "1 + 1")])
def test_reference_verifies_and_a_wrong_answer_does_not(splits, dataset, wrong):
    rows = [r for r in splits[0] + splits[1] if r["verifier"] == f"rg:{dataset}"]
    assert rows
    for row in rows:
        reference = json.loads(row["answer"])["answer"] if needs_entry(dataset) else row["answer"]
        assert verify(reference, row["answer"], row["verifier"])
        assert not verify(wrong, row["answer"], row["verifier"])
        assert not verify(None, row["answer"], row["verifier"])


def test_products_scorer_tolerates_commas_and_countdown_accepts_another_solution(splits):
    row = next(r for r in splits[0] if r["verifier"] == "rg:products" and len(r["answer"]) > 3)
    assert verify(f"{int(row['answer']):,}", row["answer"], "rg:products")
    ref = {"answer": "3 * 4", "metadata": {"numbers": [3, 4], "target": 12}, "config": {}}
    assert verify("4*3", json.dumps(ref), "rg:countdown")
    assert not verify("4*4", json.dumps(ref), "rg:countdown")


def test_answer_is_plain_when_the_scorer_reads_only_the_answer(splits):
    assert not needs_entry("basic_arithmetic") and not needs_entry("products")
    assert needs_entry("countdown") and needs_entry("puzzle24")  # metadata / config
    row = next(r for r in splits[0] if r["verifier"] == "rg:countdown")
    assert set(json.loads(row["answer"])) == {"answer", "metadata", "config"}


def test_scorers_that_parse_with_sympy_are_marked_slow():
    assert {"rg:countdown", "rg:puzzle24"} <= SLOW_VERIFIERS
    assert "rg:basic_arithmetic" not in SLOW_VERIFIERS and "rg:products" not in SLOW_VERIFIERS


def test_unknown_dataset_and_our_own_keys_fail_validation():
    with pytest.raises(ValidationError, match="unknown reasoning-gym dataset 'basic_arithmatic'"):
        ReasoningGymSource(datasets={"basic_arithmatic": {}})
    with pytest.raises(ValidationError, match="remove seed from its config"):
        ReasoningGymSource(datasets={"products": {"seed": 3}})
    with pytest.raises(ValidationError, match="weights name datasets not in `datasets`: gcd"):
        ReasoningGymSource(datasets={"products": {}}, weights={"gcd": 1})
    with pytest.raises(ValidationError, match="give a weight for every dataset; missing: gcd"):
        ReasoningGymSource(datasets={"products": {}, "gcd": {}}, weights={"products": 1})


def test_bad_dataset_config_is_named_at_load():
    src = ReasoningGymSource(datasets={"products": {"min_digits": 3, "max_digits": 1}})
    with pytest.raises(ValueError, match="reasoning-gym dataset 'products': config"):
        src.load("train", 2, seed=0)


def test_too_small_a_problem_space_says_so():
    src = ReasoningGymSource(datasets={"products": {"min_digits": 1, "max_digits": 1}})
    with pytest.raises(ValueError, match="allows too few different problems"):
        src.load("test", 30, seed=0)


def test_import_registers_verifiers_without_importing_reasoning_gym():
    code = ("import sys\n"
            "import r1pipeline.tasks.reasoning_gym\n"
            "from r1pipeline.rewards.verify import VERIFIERS\n"
            "assert 'rg:basic_arithmetic' in VERIFIERS and 'rg:products' in VERIFIERS\n"
            "assert 'reasoning_gym' not in sys.modules and 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_metadata_tuples_and_sets_survive_the_json_reference():
    from r1pipeline.tasks.reasoning_gym import _tagged, _untag

    meta = {"grid": ((1, 2), (3, 4)), "seen": {3, 1}, "by_pair": {(1, 2): "a"}, "list": [1, (2,)]}
    assert json.loads(json.dumps(_tagged(meta)), object_hook=_untag) == meta
    rows = ReasoningGymSource(datasets={"rearc": {}}).load("train", 2, seed=0)
    for row in rows:  # rearc's scorer compares tuple grids from the metadata
        assert verify(json.loads(row["answer"])["answer"], row["answer"], "rg:rearc")


def test_open_ended_dataset_has_no_reference_but_a_checker():
    rows = ReasoningGymSource(datasets={"graph_color": {}}).load("train", 2, seed=0)
    assert all(json.loads(r["answer"])["answer"] is None for r in rows)
    assert not verify("no idea", rows[0]["answer"], "rg:graph_color")


def test_dataset_with_a_broken_scorer_is_refused():
    with pytest.raises(ValidationError, match="'game_of_life_halting' cannot be used: its scorer "
                                              "gives 1.0 to any non-empty answer"):
        ReasoningGymSource(datasets={"game_of_life_halting": {}})


def test_answer_from_is_a_column_of_every_row_and_is_validated():
    src = ReasoningGymSource(datasets={"basic_arithmetic": {"min_terms": 2, "max_terms": 2}},
                             answer_from="last_number")
    assert {r["answer_from"] for r in src.load("test", 5, seed=0)} == {"last_number"}
    with pytest.raises(ValueError, match="answer_from"):
        ReasoningGymSource(datasets={"basic_arithmetic": {}}, answer_from="first_number")
