"""The pure parts of the soak's memory report (benchmarks/soak_memory.py)."""

import os

import pytest

from benchmarks.soak_memory import read_memory, slope, summarize_group


def test_slope_is_the_least_squares_line():
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert slope([(0, 1.0), (1, 0.0), (2, 1.0), (3, 0.0)]) == pytest.approx(-0.2)
    assert slope([(5, 1.0)]) == 0.0
    assert slope([(5, 1.0), (5, 2.0)]) == 0.0


def samples(values, step=10.0, cpu_per_step=1.0):
    return [(i * step, value, None, i * cpu_per_step) for i, value in enumerate(values)]


def test_flat_group_with_noise_does_not_grow():
    row = summarize_group(samples([50, 100, 101, 99, 102, 100, 101]), 10, threshold_mb=8, threshold_pct=10)
    # the warm-up sample (50 MB at t=0) is left out
    assert row["after_warmup_mb"] == 100
    assert row["final_mb"] == 101
    assert row["max_mb"] == 102
    assert row["samples"] == 6
    assert abs(row["fitted_growth_mb"]) < 2
    assert row["grows"] is False
    assert row["cpu_cores"] == pytest.approx(0.1)


def test_growth_must_exceed_both_limits():
    # 100 -> 115 MB over the window: 15 MB, more than 8 MB and more than 10 %
    grows = summarize_group(samples([100, 103, 106, 109, 112, 115]), 0, threshold_mb=8, threshold_pct=10)
    assert grows["fitted_growth_mb"] == pytest.approx(15)
    assert grows["slope_mb_per_10min"] == pytest.approx(180)
    assert grows["grows"] is True
    # 200 -> 215 MB: more than 8 MB but less than 10 % of 200
    big = summarize_group(samples([200, 203, 206, 209, 212, 215]), 0, threshold_mb=8, threshold_pct=10)
    assert big["grows"] is False
    # 20 -> 27.5 MB: more than 10 % but less than 8 MB
    small = summarize_group(samples([20, 21.5, 23, 24.5, 26, 27.5]), 0, threshold_mb=8, threshold_pct=10)
    assert small["grows"] is False


def test_a_run_shorter_than_the_warmup_keeps_its_last_sample():
    row = summarize_group(samples([10, 11]), 60, threshold_mb=8, threshold_pct=10)
    assert row["samples"] == 1
    assert row["after_warmup_mb"] == row["final_mb"] == 11
    assert row["grows"] is False
    assert summarize_group([], 0, threshold_mb=8, threshold_pct=10) == {"samples": 0}


def test_read_memory_of_this_process():
    rss, pss = read_memory(os.getpid())
    assert rss > 1
    assert pss is None or pss > 0
    assert read_memory(2**22 + 12345) is None  # no such process
