"""The peers' rewards against their sources' definitions (expectations worked out by hand from
open-r1's ``reasoning_steps_reward``, ``len_reward`` and ``get_code_format_reward``, and its
``get_repetition_penalty_reward``), and the open-r1/TRL names that resolve to ours."""

from __future__ import annotations

import pickle

import pytest
from typer.testing import CliRunner

from r1pipeline.rewards import build, registry
from r1pipeline.rewards.peers import CodeFormat, KimiLength, kimi_lambdas, reasoning_steps_reward
from r1pipeline.rewards.safe import guard
from r1pipeline.rewards.shaping import Repetition


# -- reasoning_steps: k markers of (Step N:|^N.|\n-|\n*|First,|Second,|Next,|Finally,), min(1, k/3)

@pytest.mark.parametrize(("completion", "expected"), [
    ("Step 1: add\nStep 2: carry\nStep 3: write", 1.0),
    ("First, we add.\nSecond, we carry.\nFinally, we write.", 1.0),
    ("Step 1: add\nStep 2: carry\nStep 3: write\nStep 4: check", 1.0),
    ("Step 1: the only step", 1 / 3),
    ("First, we add.\nFinally, we write.", 2 / 3),
    ("Next, carry the one.", 1 / 3),
    ("Step 12: late in a long chain", 1 / 3),
    ("a list:\n- add\n- carry", 2 / 3),
    ("a list:\n* add\n* carry\n* write", 1.0),
    ("- a bullet at the very start has no newline before it", 0.0),
    ("first, lower case is not a marker; step 1: neither", 0.0),
    ("Step one: words are not a number", 0.0),
    ("Just plain text without any clear steps", 0.0),
    ("", 0.0),
], ids=["three_step_labels_full_credit", "three_transition_words_full_credit",
        "more_than_three_is_capped_at_one", "one_step_a_third", "two_transitions_two_thirds",
        "next_is_a_marker", "multi_digit_step_number", "dash_bullets_after_newlines",
        "star_bullets_after_newlines", "leading_bullet_without_newline_not_counted",
        "markers_are_case_sensitive", "step_needs_a_digit", "plain_text_scores_zero",
        "empty_scores_zero"])
def test_reasoning_steps(completion, expected):
    assert reasoning_steps_reward([completion]) == [pytest.approx(expected)]


def test_reasoning_steps_numbered_list_counts_every_line():
    # Departure (docstring): open-r1's ^ has no multiline flag, so it would count 1 here.
    assert reasoning_steps_reward(["1. add\n2. carry\n3. write"]) == [1.0]
    assert reasoning_steps_reward(["so 1. is not at a line start"]) == [0.0]


def test_reasoning_steps_scores_each_completion_alone():
    assert reasoning_steps_reward(["Step 1: a", "plain", "First, a. Second, b."]) == pytest.approx(
        [1 / 3, 0.0, 2 / 3])


# -- kimi_length: per group, lambda = 0.5 - (len - min) / (max - min); right: lambda, wrong: min(0, lambda)

RIGHT, WRONG = "<answer>4</answer>", "<answer>5</answer>"  # both 18 characters


def pad(text: str, n: int) -> str:
    return text + "." * n


@pytest.mark.parametrize(("lengths", "expected"), [
    ([10, 20, 30], [0.5, 0.0, -0.5]),
    ([5, 5, 5], [0.0, 0.0, 0.0]),
    ([3], [0.0]),
    ([0, 100, 25], [0.5, -0.5, 0.25]),
], ids=["evenly_spaced", "equal_lengths_all_zero", "single_completion_zero", "unsorted"])
def test_kimi_lambdas(lengths, expected):
    assert kimi_lambdas(lengths) == pytest.approx(expected)


def test_kimi_length_correct_gets_lambda_wrong_gets_at_most_zero():
    r = KimiLength(unit="chars")
    # lengths 18, 23, 18, 33, 38: min 18, max 38, lambdas 0.5, 0.25, 0.5, -0.25, -0.5
    got = r([RIGHT, pad(RIGHT, 5), WRONG, pad(WRONG, 15), pad(WRONG, 20)], answer=["4"] * 5)
    assert got == pytest.approx([0.5, 0.25, 0.0, -0.25, -0.5])


def test_kimi_length_long_correct_answer_can_go_negative():
    r = KimiLength(unit="chars")
    assert r([RIGHT, pad(RIGHT, 10)], answer=["4", "4"]) == pytest.approx([0.5, -0.5])


def test_kimi_length_all_same_length_scores_zero():
    r = KimiLength(unit="chars")
    got = r([RIGHT, WRONG], answer=["4", "4"])
    assert got == [0.0, 0.0]
    assert all(str(v) == "0.0" for v in got)  # no -0.0 from min(0, ...)


def test_kimi_length_groups_by_prompt():
    r = KimiLength(unit="chars")
    completions = [RIGHT, pad(RIGHT, 10), pad(WRONG, 10), pad(WRONG, 20)]  # 18, 28 | 28, 38
    by_prompt = r(completions, answer=["4"] * 4, prompts=["p", "p", "q", "q"])
    assert by_prompt == pytest.approx([0.5, -0.5, 0.0, -0.5])
    one_group = r(completions, answer=["4"] * 4)  # no prompts: the batch is one group (open-r1)
    assert one_group == pytest.approx([0.5, 0.0, 0.0, -0.5])


def test_kimi_length_groups_chat_prompts_by_content():
    r = KimiLength(unit="chars")
    p = [{"role": "user", "content": "2+2?"}]
    q = [{"role": "user", "content": "2+3?"}]
    got = r([RIGHT, pad(RIGHT, 10), RIGHT, pad(RIGHT, 4)], answer=["4"] * 4,
            prompts=[p, [dict(m) for m in p], q, q])
    assert got == pytest.approx([0.5, -0.5, 0.5, -0.5])


def test_kimi_length_counts_tokens_by_default():
    r = KimiLength()
    # by characters the second is longer; by tokens the first is
    got = r([pad(RIGHT, 50), RIGHT], answer=["4", "4"], completion_ids=[[0] * 2, [0] * 6])
    assert got == pytest.approx([0.5, -0.5])
    with pytest.raises(ValueError, match="completion_ids"):
        r([RIGHT, RIGHT], answer=["4", "4"])


def test_kimi_length_uses_the_rows_verifier():
    r = KimiLength(unit="chars")
    near = ["<answer>4.0000001</answer>", pad("<answer>4.0000001</answer>", 10)]
    assert r(near, answer=["4", "4"]) == pytest.approx([0.0, -0.5])  # exact: both wrong
    assert r(near, answer=["4", "4"], verifier=["numeric"] * 2) == pytest.approx([0.5, -0.5])
    assert KimiLength(unit="chars", verifier="numeric")(near, answer=["4", "4"]) == pytest.approx([0.5, -0.5])


def test_kimi_length_row_without_reference_is_none():
    # open-r1 counts an uncheckable reference as correct; ours leaves the sample out
    r = KimiLength(unit="chars")
    assert r([RIGHT, pad(RIGHT, 10)], answer=["4", "4"], verifier=["none", "exact"]) == [None, -0.5]


def test_kimi_length_guard_scores_the_batch_whole():
    r = build("kimi_length", unit="chars")
    assert r.whole_batch
    completions = [RIGHT, pad(RIGHT, 10), WRONG, pad(WRONG, 20)]
    with guard(r) as g:
        assert g(completions, answer=["4"] * 4) == r(completions, answer=["4"] * 4)


def test_kimi_length_refuses_unknown_settings():
    with pytest.raises(ValueError, match="unit"):
        KimiLength(unit="words")
    with pytest.raises(ValueError, match="verifier"):
        KimiLength(verifier="telepathy")


# -- code_format: a think block, then a fenced block of the language (open-r1 get_code_format_reward)

CODE = "```python\ndef hello():\n    print('world')\n```"


@pytest.mark.parametrize(("completion", "expected"), [
    (f"<think>\nLet's solve this\nStep 1: First step\n</think>\n<answer>\n{CODE}\n</answer>", 1.0),
    (f"<think>Analysis</think><answer>{CODE}</answer>", 1.0),
    (f"<think>\nExample:\n```python\nx = 1\n```\n</think>\n<answer>\n{CODE}\n</answer>", 1.0),
    ("<think>\nA\n</think>\n<answer>\n```python\nclass S:\n    def f(self):\n\n        return 42\n```"
     "\n</answer>", 1.0),
    (CODE, 0.0),
    ("<think>Some thinking</think><answer>Just plain text</answer>", 0.0),
    ("<think>Analysis</think><answer>```javascript\nconsole.log('hello');\n```</answer>", 0.0),
    ("<think>Analysis</think><answer>```\ndef hello(): pass\n```</answer>", 0.0),
    (f"<answer>{CODE}</answer><think>Analysis</think>", 0.0),
    (f"<think>\n{CODE}\n</think>\nNo code here.", 0.0),
    ("<think>A</think><answer>```python\ndef hello(): pass</answer>", 0.0),
    (f"<think>unclosed\n<answer>{CODE}</answer>", 0.0),
], ids=["open_r1_layout", "tags_without_newlines", "block_in_think_and_answer", "multiline_code",
        "no_think_block", "no_code_block", "wrong_language", "no_language_tag", "think_after_answer",
        "block_only_inside_think", "unclosed_fence", "unclosed_think"])
def test_code_format_python(completion, expected):
    assert CodeFormat("python")([completion]) == [expected]


def test_code_format_block_in_the_r1_summary_counts():
    # Departure (docstring): the R1 summary after </think> needs no <answer> tags
    assert CodeFormat()([f"<think>plan</think>\nHere is the program:\n{CODE}\nDone."]) == [1.0]


def test_code_format_language_parameter():
    js = "<think>\nA\n</think>\n<answer>\n```javascript\nconsole.log('hello');\n```\n</answer>"
    assert CodeFormat("javascript")([js]) == [1.0]
    assert CodeFormat("python")([js]) == [0.0]


def test_code_format_tag_is_the_whole_word():
    cpp = "<think>t</think>```cpp\nint main() {}\n```"
    assert CodeFormat("c")([cpp]) == [0.0]  # open-r1's prefix match would give 1.0
    assert CodeFormat("cpp")([cpp]) == [1.0]
    assert CodeFormat("python")(["<think>t</think>```python3\nprint(1)\n```"]) == [0.0]
    assert CodeFormat("c++")(["<think>t</think>```c++\nint main() {}\n```"]) == [1.0]


def test_code_format_reads_the_rows_code_language():
    py, cpp = f"<think>t</think>{CODE}", "<think>t</think>```cpp\nint main() {}\n```"
    r = CodeFormat("python")
    assert r([py, cpp, cpp], code_language=["python", "cpp", "python"]) == [1.0, 1.0, 0.0]
    assert r([py, cpp], code_language=[None, "cpp"]) == [1.0, 1.0]  # a blank row: the parameter


def test_code_format_ignores_a_natural_language_column():
    # tasks may name a natural language in ``language`` (for language_consistency)
    assert CodeFormat("python")([f"<think>t</think>{CODE}"], language=["en"]) == [1.0]


@pytest.mark.parametrize("bad", ["", "py thon", "python\n", "(a|b)"])
def test_code_format_refuses_a_language_that_is_not_a_fence_tag(bad):
    with pytest.raises(ValueError, match="fence tag"):
        CodeFormat(bad)


# -- repetition: max_penalty * (1 - distinct n-grams / all n-grams), over words or characters

@pytest.mark.parametrize(("text", "n", "penalty", "expected"), [
    ("this this this this this", 2, -1.0, -0.75),
    ("this is a this is a test", 2, -1.0, -1 / 3),
    ("this is a this is a test", 3, -2.0, -0.4),
    ("A B C A B C", 3, -1.0, -0.25),
    ("This is A Test", 2, -1.0, 0.0),
    ("two words", 3, -1.0, 0.0),
], ids=["one_word_looping", "partial_repeat", "trigrams_scaled", "abc_twice", "no_repeat",
        "shorter_than_an_ngram"])
def test_repetition_words_is_open_r1s(text, n, penalty, expected):
    assert Repetition(ngram_size=n, max_penalty=penalty)([text]) == [pytest.approx(expected)]


@pytest.mark.parametrize(("text", "n", "expected"), [
    ("我们我们我们", 2, -0.6),  # bigrams 我们 们我 我们 们我 我们: 2 distinct of 5
    ("我们 我们 我们", 2, -0.6),  # spaces are not units
    ("好好好好", 3, -0.5),  # 好好好 twice: 1 distinct of 2
    ("我们今天去公园", 2, 0.0),
    ("所以所以所以所以", 2, -5 / 7),  # 2 distinct of 7
    ("ABab", 2, -1 / 3),  # lowercased: ab ba ab
    ("我", 2, 0.0),
    ("", 2, 0.0),
], ids=["chinese_loop", "spaces_ignored", "chinese_trigrams", "chinese_without_repeats",
        "connective_loop", "lowercased", "shorter_than_an_ngram", "empty"])
def test_repetition_chars_counts_chinese(text, n, expected):
    assert Repetition(ngram_size=n, unit="chars")([text]) == [pytest.approx(expected)]


def test_repetition_chinese_loop_never_repeats_as_words():
    loop = "我们我们我们我们我们我们"
    assert Repetition(ngram_size=2)([loop]) == [0.0]  # one "word": the reason for unit=chars
    assert Repetition(ngram_size=2, unit="chars")([loop]) < [-0.8]


def test_repetition_unit_is_checked():
    with pytest.raises(ValueError, match="unit"):
        Repetition(unit="tokens")
    assert registry.param_problem("repetition", {"unit": "parsecs"})[0] == "unit"
    assert registry.param_problem("repetition", {"unit": "chars"}) is None


def test_repetition_pickled_before_unit_existed_counts_words():
    old = Repetition(ngram_size=2)
    state = {k: v for k, v in old.__dict__.items() if k != "unit"}
    restored = Repetition.__new__(Repetition)
    restored.__setstate__(state)
    assert restored.unit == "words"
    assert pickle.loads(pickle.dumps(Repetition(unit="chars"))).unit == "chars"


# -- the names open-r1's and TRL's users write

@pytest.mark.parametrize(("alias", "ours", "params"), [
    ("accuracy_reward", "accuracy", {}),
    ("reasoning_accuracy_reward", "accuracy", {}),
    ("format_reward", "format", {"style": "r1_zero"}),
    ("think_format_reward", "format", {"style": "r1"}),
    ("tag_count_reward", "tag_count", {}),
    ("reasoning_steps_reward", "reasoning_steps", {}),
    ("len_reward", "kimi_length", {}),
    ("cosine_scaled_reward", "cosine_length", {}),
    ("get_cosine_scaled_reward", "cosine_length", {}),
    ("get_repetition_penalty_reward", "repetition", {}),
    ("repetition_penalty_reward", "repetition", {}),
    ("get_soft_overlong_punishment", "soft_overlong", {}),
    ("code_reward", "code", {}),
    ("get_code_format_reward", "code_format", {}),
    ("code_format_reward", "code_format", {}),
    ("cosine", "cosine_length", {}),
    ("repetition_penalty", "repetition", {}),
    ("length", "kimi_length", {}),
    ("soft_overlong_punishment", "soft_overlong", {}),
])
def test_alias_resolves_to_ours(alias, ours, params):
    assert registry.resolve(alias) == (ours, params)
    assert registry.entry(alias) is registry.entry(ours)
    assert alias in registry.aliases_of(ours)


def test_open_r1_recipe_keys_resolve():
    # open-r1's get_reward_funcs keys that a recipe's reward_funcs list uses (not its e2b/ioi ones)
    for key in ["accuracy", "format", "reasoning_steps", "cosine", "repetition_penalty", "length",
                "tag_count", "code", "code_format", "soft_overlong_punishment"]:
        assert registry.entry(key).name in registry.names()


def test_alias_builds_ours_under_our_name():
    fn = build("len_reward", unit="chars")
    assert isinstance(fn, KimiLength) and fn.__name__ == "kimi_length_reward"
    assert build("think_format_reward").style == "r1"
    assert build("think_format_reward", style="any").style == "any"  # the user's parameters win
    assert build("get_code_format_reward", language="cpp").language == "cpp"


def test_every_alias_targets_a_registered_reward():
    for alias, (target, preset) in registry.ALIASES.items():
        assert target in registry.names(), alias
        assert alias not in registry.names(), alias
        assert registry.param_problem(alias, preset) is None, alias


def test_spec_check_accepts_aliases_and_their_parameters():
    from r1pipeline.stages.common import check_rewards

    rewards = {"accuracy_reward": 1.0, "think_format_reward": 0.5,
               "len_reward": {"weight": 0.2, "unit": "chars"}}
    assert check_rewards("r1_zero", rewards) == []
    problems = check_rewards("r1_zero", {"len_reward": {"weight": 0.2, "unit": "parsecs"}})
    assert problems and "unit" in str(problems[0])


def test_r1_rewards_lists_the_aliases():
    from r1pipeline.cli import app

    result = CliRunner().invoke(app, ["rewards"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name in ("reasoning_steps", "kimi_length", "code_format", "repetition"):
        assert name in lines
    for alias, (target, _) in registry.ALIASES.items():
        assert alias in lines[target], (alias, target)
