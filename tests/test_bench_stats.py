"""The benchmark's statistics against inputs whose answers are known by hand."""

from __future__ import annotations

import math
import statistics

import pytest

from fibrpc_helpers.bench.stats import (
    erlang_c,
    littles_law_ratio,
    mdc_latency,
    mean_in_flight,
    mmc_latency,
    percentile,
    poisson_schedule,
    summarize,
)


def test_percentile_nearest_rank_on_1_to_100() -> None:
    values = list(range(100, 0, -1))  # unsorted on purpose
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 99.5) == 100
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1


def test_percentile_is_always_an_observed_value() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # not the interpolated 2.5
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 1000.0], 99) == 1000.0  # the tail is not averaged away


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_summary_of_known_latencies() -> None:
    latencies = [0.001 * k for k in range(1, 101)]  # 1 ms .. 100 ms
    s = summarize(latencies, duration=2.0, errors=3)
    assert s.calls == 100 and s.errors == 3
    assert s.throughput == 50.0
    assert s.p50 == pytest.approx(0.050)
    assert s.p90 == pytest.approx(0.090)
    assert s.p99 == pytest.approx(0.099)
    assert s.max == pytest.approx(0.100)
    assert s.mean == pytest.approx(0.0505)


def test_summary_without_calls_is_nan_not_an_error() -> None:
    s = summarize([], duration=1.0, errors=5)
    assert s.calls == 0 and s.throughput == 0 and math.isnan(s.p99)


def test_littles_law_closed_loop() -> None:
    # 8 clients, each call 20 ms, no gap between calls: 400 calls/s, L = 400 x 0.02 = 8.
    assert littles_law_ratio(400.0, 0.020, 8) == pytest.approx(1.0)
    # The same clients losing 5 ms between calls (time the bookkeeping missed): 320 calls/s.
    assert littles_law_ratio(320.0, 0.020, 8) == pytest.approx(0.8)


def test_mean_in_flight_from_intervals() -> None:
    # Two calls overlapping in [0, 2): 1 s + 1.5 s busy over 2 s = 1.25 in flight.
    assert mean_in_flight([(0.0, 1.0), (0.5, 2.0)], 0.0, 2.0) == pytest.approx(1.25)
    # Clipped to the window: only the parts inside [1, 2) count.
    assert mean_in_flight([(0.0, 1.5), (0.5, 3.0)], 1.0, 2.0) == pytest.approx(1.5)


def test_poisson_schedule_is_seeded_sorted_and_in_window() -> None:
    first = poisson_schedule(100.0, 2.0, seed=7)
    assert first == poisson_schedule(100.0, 2.0, seed=7)
    assert first != poisson_schedule(100.0, 2.0, seed=8)
    assert first == sorted(first) and 0 < first[0] and first[-1] < 2.0


def test_poisson_schedule_has_the_rate_and_exponential_gaps() -> None:
    times = poisson_schedule(1000.0, 20.0, seed=1)  # about 20 000 arrivals
    assert abs(len(times) - 20_000) < 4 * math.sqrt(20_000)  # Poisson: sd = sqrt(mean)
    gaps = [b - a for a, b in zip(times[:-1], times[1:], strict=True)]
    assert statistics.mean(gaps) == pytest.approx(0.001, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(0.001, rel=0.05)  # exponential: sd = mean


def test_erlang_c_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(2, 2.0) == 1.0  # overloaded: everyone waits
    assert 0 < erlang_c(400, 380.0) < 1  # a^c and c! would overflow a float; the terms do not


def test_queueing_model_latencies() -> None:
    # M/M/1, lambda = 0.5, S = 1: W = 1 / (mu - lambda) = 2.
    assert mmc_latency(0.5, 1.0, 1) == pytest.approx(2.0)
    # M/M/2, lambda = 1, S = 1: Wq = (1/3) / (2 - 1), W = 4/3.
    assert mmc_latency(1.0, 1.0, 2) == pytest.approx(4 / 3)
    # M/D/1 (Pollaczek-Khinchine), rho = 0.5, S = 1: Wq = rho S / (2 (1 - rho)) = 0.5.
    assert mdc_latency(0.5, 1.0, 1) == pytest.approx(1.5)
    assert math.isinf(mdc_latency(3.0, 1.0, 2))
    # A light load waits almost never: latency tends to the service time.
    assert mdc_latency(0.001, 0.01, 4) == pytest.approx(0.01, rel=1e-6)


def _scaling_rows(throughputs: dict[int, list[float]]) -> list[dict[str, object]]:
    return [
        {"work": "cpu", "workers": w, "throughput": t, "bottleneck": f"verdict {w} {t:g}"}
        for w, values in throughputs.items()
        for t in values
    ]


def test_the_scaling_sentence_follows_the_measured_numbers_and_the_cores() -> None:
    from fibrpc_helpers.bench.conclusions import best_throughput, scaling

    rows = _scaling_rows({1: [300, 340], 2: [520, 500], 4: [560, 410]})
    assert best_throughput(rows, "cpu") == {1: 340, 2: 520, 4: 560}
    two = scaling(rows, "cpu", 2, cpu_bound=True)
    assert "W = 1: 340, W = 2: 520, W = 4: 560" in two and "2 to 4: 1.08x" in two
    assert "stopped growing after W = 2" in two and "keep this machine's 2 cores busy" in two
    assert two.endswith("At W = 4: verdict 4 560.")  # the verdict of the point that fell short
    assert "below this machine's 8 cores" in scaling(rows, "cpu", 8, cpu_bound=True)
    sleeping = scaling(rows, "cpu", 2, cpu_bound=False)
    assert "cores" not in sleeping and "something else limited them" in sleeping
    grows = _scaling_rows({1: [100], 2: [190], 4: [370]})
    assert "grew at every step, up to W = 4" in scaling(grows, "cpu", 8, cpu_bound=True)
    assert "more workers than this machine's 1 core:" in scaling(grows, "cpu", 1, cpu_bound=True)
    assert "stopped" not in scaling(grows, "cpu", 1, cpu_bound=False)
    dip = scaling(_scaling_rows({1: [120], 2: [124], 4: [219]}), "cpu", 2, cpu_bound=True)
    assert "grew from W = 2 to 4 but not at every step" in dip and "stopped" not in dip
    with pytest.raises(ValueError, match="two worker counts"):
        scaling(_scaling_rows({1: [100]}), "cpu", 2, cpu_bound=True)


def test_a_cpu_figure_that_could_not_be_read_says_so() -> None:
    from fibrpc_helpers.bench.conclusions import percent

    assert percent(26.6) == "27%" and percent(math.nan) == "not available"
