"""The guard: nothing a reward sees stops training; events are counted."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import threading
import time

import pytest

from r1pipeline.rewards.answers import math_accuracy_reward
from r1pipeline.rewards.builtin import accuracy_reward
from r1pipeline.rewards.safe import GuardedReward, as_text, guard
from tests.rewards.helpers import guarded_hang_in_pool_worker, misbehaving_reward

SLACK_S = 30.0  # room for starting worker processes on a busy 2-core machine; far below a hang


def lengths(completions, **_):
    return [float(len(c)) for c in completions]


def raises_on_x(completions, **_):
    if any("x" in c for c in completions):
        raise ValueError("x!")
    return [1.0] * len(completions)


@pytest.mark.parametrize(("fn", "completions", "expected", "errors"), [
    (raises_on_x, ["a", "x", "b"], [1.0, 0.0, 1.0], 1),
    (lambda cs, **_: [1.0], ["a", "b"], [1.0, 1.0], 0),
    (lambda cs, **_: [float("inf")] * len(cs), ["a", "b"], [0.0, 0.0], 2),
    (lambda cs, **_: [float("nan"), 2], ["a", "b"], [None, 2.0], 0),
    (lambda cs, **_: ["high", 1], ["a", "b"], [0.0, 1.0], 1),
    (lambda cs, **_: [True, None], ["a", "b"], [1.0, None], 0),
], ids=["exception_costs_only_its_sample", "wrong_length_batch_rescored_per_sample",
        "infinite_is_an_error", "nan_means_skip", "non_number_is_an_error", "bool_and_none_pass"])
def test_inline(fn, completions, expected, errors):
    g = guard(fn, timeout_s=1.0)
    assert g(completions) == expected
    assert g.stats["errors"] == errors


def test_on_error_none_skips_the_sample():
    g = guard(raises_on_x, timeout_s=1.0, on_error=None)
    assert g(["a", "x"]) == [1.0, None]
    assert g.stats["errors"] == 1 and g.stats["skipped"] == 1


def test_keeps_name_and_counters_reset():
    g = guard(accuracy_reward, timeout_s=1.0)
    g(["<answer>1</answer>"], answer=["1"])
    assert g.__name__ == "accuracy_reward" and g.stats["samples"] == 1
    g.reset()
    assert set(g.stats.values()) == {0}


def test_columns_are_split_per_sample_on_fallback():
    def needs_answer(completions, answer, trainer_state=None, **_):
        assert trainer_state == "state"
        if "x" in completions:
            raise ValueError
        return [float(c == a) for c, a in zip(completions, answer)]

    g = guard(needs_answer, timeout_s=1.0)
    assert g(["1", "x", "3"], answer=["1", "2", "3"], trainer_state="state") == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(("completion", "text", "truncated"), [
    ("ok", "ok", False),
    ("a\ud800b\udfffc", "a?b?c", False),
    ("a\x00b", "a\x00b", False),
    (b"\xff\xfe", "\ufffd\ufffd", False),
    ([{"role": "assistant", "content": "chat"}], "chat", False),
    (None, "", False),
    ("h" * 6 + "t" * 6, "hhh\n[...]\nttt", True),
], ids=["plain", "lone_surrogates_replaced", "nul_kept", "bytes_decoded", "chat_messages_joined",
        "none_is_empty", "long_keeps_head_and_tail"])
def test_as_text(completion, text, truncated):
    assert as_text(completion, max_chars=6) == (text, truncated)


def test_megabyte_completion_is_truncated_and_still_scored():
    g = guard(accuracy_reward, timeout_s=1.0, max_chars=10_000)
    huge = "<think>" + "blah " * 400_000 + "</think><answer>7</answer>"
    assert g([huge], answer=["7"]) == [1.0]
    assert g.stats["truncated"] == 1


def test_timeout_from_a_worker_thread():
    out = []
    with guard(misbehaving_reward, timeout_s=0.5) as g:
        t0 = time.monotonic()
        th = threading.Thread(target=lambda: out.append(g(["a", "hang", "bb"])))
        th.start()
        th.join(timeout=120)
        elapsed = time.monotonic() - t0
        assert out == [[1.0, 0.0, 2.0]]
        assert g.stats["timeouts"] == 1 and g.stats["restarts"] == 1
        assert elapsed < 0.5 + SLACK_S


def test_worker_death_and_exceptions_cost_one_sample_each():
    with guard(misbehaving_reward, timeout_s=5.0, on_error=-1.0) as g:
        assert g(["a", "die", "boom", "ccc"]) == [1.0, -1.0, -1.0, 3.0]
        assert g.stats["errors"] == 2 and g.stats["restarts"] == 1
        assert g(["dd"]) == [2.0]  # the restarted worker goes on


def test_parallel_workers_keep_order():
    with guard(misbehaving_reward, timeout_s=5.0, workers=2) as g:
        assert g(["a" * i for i in range(10)]) == [float(i) for i in range(10)]


def test_math_verify_hang_shape_is_refused_without_a_timeout():
    hang = "<think>.</think><answer>\\boxed{10^{10^{10}}!}</answer>"  # hung math-verify before bounds.py
    ok = "<think>.</think><answer>1/2</answer>"
    with guard(accuracy_reward, timeout_s=5.0) as g:  # isolated because of the verifier column
        assert g([ok, hang, ok], answer=["0.5", "2", "0.5"], verifier=["math"] * 3) == [1.0, 0.0, 1.0]
        assert g.stats["timeouts"] == 0 and g.stats["restarts"] == 0


def test_exact_verifier_runs_inline():
    with guard(accuracy_reward, timeout_s=1.0) as g:
        assert g(["<answer>1</answer>"], answer=["1"], verifier=["exact"]) == [1.0]
        assert g._pool == []


def test_time_limit_works_inside_a_daemonic_pool_worker():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        values, stats = pool.apply(guarded_hang_in_pool_worker, ("hang",))
    assert values == [-1.0, 1.0] and stats["timeouts"] == 1


def test_unpicklable_reward_falls_back_to_inline():
    local = lambda cs, **_: [0.5] * len(cs)  # noqa: E731  (a lambda does not pickle)
    g = GuardedReward(local, timeout_s=1.0, isolate=True)
    assert g(["a"]) == [0.5]


def test_guard_pickles_without_its_workers():
    # a fresh worker imports math-verify and sympy: over 1 s on busy cores, which scored 0.0 (a timeout)
    g = guard(math_accuracy_reward, timeout_s=15.0)
    g(["<answer>1</answer>"], answer=["1"])
    clone = pickle.loads(pickle.dumps(g))
    try:
        assert clone.__name__ == "math_accuracy_reward" and clone._pool == []
        assert clone(["<answer>2</answer>"], answer=["2"]) == [1.0]
    finally:
        clone.close()
        g.close()


def test_bad_arguments_rejected():
    with pytest.raises(ValueError):
        guard(lengths, timeout_s=0)
    assert math.isclose(guard(lengths, timeout_s=0.1).timeout_s, 0.1)


def test_reward_without_verifier_argument_runs_inline_whatever_the_column():
    from r1pipeline.rewards.builtin import format_reward

    with guard(format_reward, timeout_s=1.0) as g:
        assert g(["<think>a</think><answer>b</answer>"], answer=["b"], verifier=["math"]) == [1.0]
        assert g._pool == []



def test_workers_that_cannot_start_leave_finished_samples_alone(monkeypatch):
    from r1pipeline.rewards import safe

    with guard(misbehaving_reward, timeout_s=0.5) as g:
        real = safe._Worker.__init__
        started = []

        def fail_after_first(self, *a, **kw):
            if started:
                raise OSError("no more processes")
            started.append(1)
            real(self, *a, **kw)

        monkeypatch.setattr(safe._Worker, "__init__", fail_after_first)
        # the hang kills the first worker; no second one starts: the rest is scored inline
        assert g(["a", "hang", "bb"]) == [1.0, 0.0, 2.0]
        assert g.stats["timeouts"] == 1 and g._no_isolation
