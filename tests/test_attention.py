"""attention: auto picks the faster kernel by timing the step itself, caches it per machine,
and never lets an explicit choice or the environment be overruled."""

import json

import pytest

from r1pipeline import attention, machine_cache

KEY = "machine|dtype=float32|step=tiny"


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv(machine_cache.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(attention.ENV_FORCE, raising=False)
    monkeypatch.setattr(machine_cache, "machine_load", lambda: 0.1)
    return tmp_path / attention.CACHE_FILE


def fake_step(seconds: dict[str, float], calls: list):
    """A step whose kernels take ``seconds`` on a fake clock that it advances."""
    clock = {"now": 0.0}

    def step(impl):
        calls.append(impl)
        clock["now"] += seconds[impl]
    return step, lambda: clock["now"]


@pytest.mark.parametrize("seconds, expected", [
    ({"sdpa": 0.409, "eager": 0.277}, "eager"),   # Zen 4, bf16, 2 threads (measured)
    ({"sdpa": 0.443, "eager": 0.421}, "sdpa"),    # Zen 4, fp32: 1.05x is inside the margin
    ({"sdpa": 0.200, "eager": 0.400}, "sdpa"),
    ({"sdpa": 0.23, "eager": 0.20}, "eager"),     # just over the margin
])
def test_eager_only_when_it_wins_by_the_margin(seconds, expected):
    impl, reason = attention.decide(seconds)
    assert impl == expected and f"{attention.MARGIN}x" in reason


def test_timing_interleaves_and_drops_the_warm_up():
    calls: list = []
    step, clock = fake_step({"sdpa": 1.0, "eager": 0.5}, calls)
    best = attention.time_steps(step, rounds=3, clock=clock)
    assert calls == ["sdpa", "eager", "eager", "sdpa"] * 2
    assert best == {"sdpa": 1.0, "eager": 0.5}


def test_a_burst_of_load_on_one_sample_is_outvoted_by_the_best():
    times = iter([9, 9, 0.3, 9.0, 0.4, 0.3, 0.3, 0.4])  # warm-up pair, then eager first, a slow sdpa
    clock = {"now": 0.0}

    def step(impl):
        clock["now"] += next(times)
    best = attention.time_steps(step, rounds=3, clock=lambda: clock["now"])
    assert best == pytest.approx({"sdpa": 0.4, "eager": 0.3})


def test_measured_then_cached(cache):
    calls: list = []
    step, clock = fake_step({"sdpa": 0.4, "eager": 0.2}, calls)
    first = attention.resolve("auto", step=lambda impl: step(impl), key=KEY)
    n = len(calls)
    second = attention.resolve("auto", step=step, key=KEY)
    assert (first.source, second.source) == ("measured", "cached") and len(calls) == n
    assert first.impl == second.impl
    assert list(json.loads(cache.read_text())["entries"]) == [KEY]
    assert first.record()["step_seconds"].keys() == {"sdpa", "eager"}


def test_another_key_measures_again(cache):
    calls: list = []
    step, _ = fake_step({"sdpa": 0.4, "eager": 0.2}, calls)
    attention.resolve("auto", step=step, key=KEY)
    n = len(calls)
    assert attention.resolve("auto", step=step, key=KEY + "-bf16").source == "measured" and len(calls) == 2 * n


def test_a_busy_machine_measures_but_does_not_cache(cache, monkeypatch):
    monkeypatch.setattr(machine_cache, "machine_load", lambda: 3.0)
    step, _ = fake_step({"sdpa": 0.4, "eager": 0.2}, [])
    d = attention.resolve("auto", step=step, key=KEY)
    assert d.source == "measured" and "load" in d.record()["not_cached"] and not cache.exists()


@pytest.mark.parametrize("garbage", ["not json", '{"version": 1, "entries": {"%s": {"seconds": {}}}}' % KEY])
def test_a_corrupt_cache_is_measured_again(cache, garbage):
    cache.write_text(garbage)
    step, _ = fake_step({"sdpa": 0.4, "eager": 0.2}, [])
    assert attention.resolve("auto", step=step, key=KEY).source == "measured"


def test_explicit_environment_and_device_never_measure(cache, monkeypatch):
    def step(impl):
        raise AssertionError("measured")
    assert attention.resolve("eager", step=step, key=KEY).record()["source"] == "spec"
    assert attention.resolve("auto", step=step, key=KEY, device="cuda").impl == "sdpa"
    monkeypatch.setenv(attention.ENV_FORCE, "eager")
    assert (attention.resolve("auto", step=step, key=KEY).impl,
            attention.resolve("sdpa", step=step, key=KEY).impl) == ("eager", "sdpa")  # the spec wins


def test_measure_in_the_environment_ignores_the_cache(cache, monkeypatch):
    calls: list = []
    step, _ = fake_step({"sdpa": 0.4, "eager": 0.2}, calls)
    attention.resolve("auto", step=step, key=KEY)
    monkeypatch.setenv(attention.ENV_FORCE, "measure")
    assert attention.resolve("auto", step=step, key=KEY).source == "measured"


@pytest.mark.parametrize("bad, env", [("flash", None), ("auto", "flash")])
def test_unknown_kernels_say_the_fix(cache, monkeypatch, bad, env):
    if env:
        monkeypatch.setenv(attention.ENV_FORCE, env)
    with pytest.raises(ValueError, match="fix"):
        attention.resolve(bad, step=lambda impl: None, key=KEY)
