from __future__ import annotations

import pytest

from r1pipeline.rewards.code import CodeTests, extract_program

sandbox = pytest.importorskip("r1pipeline.sandbox")
if not hasattr(sandbox, "run_program"):
    pytest.skip("r1pipeline.sandbox.run_program is not there yet", allow_module_level=True)

DOUBLE = "<think>read n, print 2n</think>\n```python\nprint(int(input()) * 2)\n```"
TESTS = [{"input": "2\n", "output": "4"}, {"input": "3\n", "output": "6\n"},
         {"input": "5", "output": "11"}]


@pytest.mark.parametrize(("completion", "tests", "expected"), [
    (DOUBLE, TESTS, 2 / 3),
    (DOUBLE, TESTS[:2], 1.0),
    (DOUBLE, '[{"input": "1", "output": "2"}]', 1.0),
    ("<think>```python\nprint(4)\n```</think> done", TESTS[:1], 0.0),
    ("<think>x</think>no program", TESTS, 0.0),
    ("<think>x</think>```python\nprint(1)\n```\n```python\nprint(int(input())*2)\n```", TESTS[:2], 1.0),
    ("<think>x</think>```python\nraise SystemExit(1)\n```", TESTS[:1], 0.0),
    ("<think>x</think>```python\nwhile True: pass\n```", TESTS[:1], 0.0),
    ("<think>x</think>```python\nprint(' 4 ')\nprint()\n```", TESTS[:1], 1.0),
    (DOUBLE, [], None),
], ids=["share_of_tests_passed", "all_passed", "tests_as_json_text", "program_inside_think_only_scores_zero",
        "no_program_scores_zero", "last_block_is_the_program", "crash_fails", "timeout_fails",
        "whitespace_trimmed_per_line", "no_tests_is_none"])
def test_code_reward(completion, tests, expected):
    r = CodeTests(time_limit_s=0.5)
    assert r([completion], tests=[tests]) == [pytest.approx(expected) if expected is not None else None]


def test_without_tests_column_nothing_applies():
    assert CodeTests()([DOUBLE, "x"]) == [None, None]


def test_extract_program_ignores_other_languages():
    assert extract_program("<think>.</think>```bash\nls\n```") is None
