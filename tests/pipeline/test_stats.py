"""The findings' statistics on tiny numbers: ratio metrics, the paired bootstrap, the t interval."""

from __future__ import annotations

import math

import pytest

from r1pipeline.pipeline.stats import T_975, paired_bootstrap, ratio, t_interval


def test_a_ratio_metric_weighs_prompts_by_their_denominator():
    # language consistency over samples with a CoT: 1 of 1 on one prompt, 1 of 3 on the other
    assert ratio([(1.0, 1.0), (1.0, 3.0)]) == 0.5


def test_identical_sides_have_no_effect_and_a_zero_width_paired_interval():
    side = [(1.0, 1.0), (0.0, 1.0), (0.5, 1.0)]
    assert paired_bootstrap(side, side, n=200) == (0.0, [0.0, 0.0])


def test_pairing_cancels_what_both_sides_share():
    # the right side is the left side less 0.1 on every prompt: paired, the effect is exactly 0.1
    left = [(v, 1.0) for v in (0.0, 1.0, 0.2, 0.9, 0.5, 0.7, 0.1, 1.0)]
    right = [(n - 0.1, 1.0) for n, _ in left]
    effect, (lo, hi) = paired_bootstrap(left, right, n=500)
    assert effect == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    _, (ulo, uhi) = paired_bootstrap(left, right, n=500, paired=False)
    assert ulo < 0.0 < 0.1 < uhi  # unpaired, prompt-to-prompt spread swamps the difference


def test_a_constant_right_side_shifts_a_plain_bootstrap_of_the_left():
    left = [(1.0, 1.0), (0.0, 1.0)] * 10
    effect, (lo, hi) = paired_bootstrap(left, 0.25, n=400)
    assert effect == pytest.approx(0.25) and lo < 0.25 < hi
    plain, (plo, phi) = paired_bootstrap(left, 0.0, n=400)
    assert (lo, hi) == pytest.approx((plo - 0.25, phi - 0.25))


def test_scales_multiply_their_side():
    effect, ci = paired_bootstrap([(4.0, 1.0)], [(1.0, 1.0)], left_scale=0.5, right_scale=2.0, n=50)
    assert effect == 0.0 and ci == [0.0, 0.0]


def test_the_t_interval_over_seeds_uses_the_t_quantile_of_its_degrees_of_freedom():
    lo, hi = t_interval([0.1, 0.2, 0.3])  # mean 0.2, sd 0.1, df 2: t = 4.303
    half = 4.303 * 0.1 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half))
    assert t_interval([0.5, 0.5, 0.5]) == [0.5, 0.5]
    assert t_interval([0.5]) is None and t_interval([]) is None


def test_past_thirty_degrees_of_freedom_the_last_quantile_is_kept():
    values = [0.0, 1.0] * 25  # n = 50, sd = 0.505...
    lo, hi = t_interval(values)
    sd = math.sqrt(sum((v - 0.5) ** 2 for v in values) / 49)
    assert hi - 0.5 == pytest.approx(T_975[-1] * sd / math.sqrt(50))
