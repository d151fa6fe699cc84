"""A reward's own parameters are checked at ``r1 validate`` by the code that builds the reward:
exit 2 naming the stage, the reward, the field and the fix, before torch is imported."""

from __future__ import annotations

import pytest
import yaml

from r1pipeline.rewards import param_problem
from tests.pipeline.test_spec_errors import mutate, run_cli_many, stage

CASES = {
    "unknown_format_style": ({"format": {"weight": 0.5, "style": "r2"}},
                             ["field 'rewards.format.style'", "reward 'format'", "'r2'", "use one of r1_zero, r1, any"]),
    "unknown_language": ({"lang": {"reward": "language_consistency", "language": "klingon"}},
                         ["field 'rewards.lang.language'", "reward 'language_consistency'", "'klingon'",
                          "use one of en, zh"]),
    "unknown_length_unit": ({"cosine_length": {"weight": 1.0, "unit": "parsecs"}},
                            ["field 'rewards.cosine_length.unit'", "'parsecs'", "use one of tokens, chars"]),
    "length_limit_as_text": ({"cosine_length": {"max_len": "long"}},
                             ["field 'rewards.cosine_length.max_len'", "must be a number", "its default, 1000"]),
    "cache_longer_than_limit": ({"soft_overlong": {"cache_len": 5000, "max_completion_len": 100}},
                                ["field 'rewards.soft_overlong.cache_len'", "cache_len <= max_completion_len"]),
    "positive_repetition_penalty": ({"repetition": {"max_penalty": 1.0}},
                                    ["field 'rewards.repetition.max_penalty'", "must be <= 0"]),
    "unknown_cosine_verifier": ({"cosine_length": {"verifier": "mathz"}},
                                ["field 'rewards.cosine_length.verifier'", "'mathz'", "use one of"]),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reward_params")
    calls = []
    for case, (rewards, _) in CASES.items():
        path = folder / f"{case}.yaml"
        path.write_text(yaml.safe_dump(mutate(lambda s, r=rewards: stage(s, "r1_zero")["rewards"].update(r))))
        calls.append(["validate", str(path)])
    good = folder / "good.yaml"
    good.write_text(yaml.safe_dump(mutate(lambda s: stage(s, "r1_zero")["rewards"].update(
        format={"weight": 0.5, "style": "any"}, cosine_length={"unit": "chars", "max_len": 200}))))
    calls.append(["validate", str(good)])
    return dict(zip([*CASES, "good"], run_cli_many(calls), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_reward_parameter_is_refused_at_validate(case, results):
    result, stderr = results[case]
    assert result["code"] == 2, stderr
    assert not result["torch"], "validation imported torch"
    line = stderr.strip().splitlines()[0]
    assert "stage 'r1_zero'" in line and "fix: " in line
    for text in CASES[case][1]:
        assert text in line, f"{text!r} not in {line!r}"


def test_good_reward_parameters_validate(results):
    result, stderr = results["good"]
    assert result["code"] == 0, stderr


@pytest.mark.parametrize(("name", "params"), [
    ("cosine_length", {"max_len": float("inf")}), ("cosine_length", {"max_len": 2.5}),
    ("code", {"time_limit_s": True}), ("format", {"style": 3}),
], ids=["infinite_length", "fractional_length", "bool_for_a_number", "number_for_a_string"])
def test_parameter_of_the_wrong_kind_names_the_parameter(name, params):
    key, message, fix = param_problem(name, params)
    assert key == next(iter(params)) and key in message and "default" in fix
