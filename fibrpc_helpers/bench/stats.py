"""The statistics of a latency benchmark: percentiles, Little's law, arrivals, queueing models.

Pure functions on plain lists of seconds, each unit-tested against known inputs."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat, takewhile


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile (as HdrHistogram): the smallest value with at least p %
    of values <= it, a latency some call really had (``percentile([1, 2, 3, 4], 50) == 2``)."""
    if not values:
        raise ValueError("no values: a percentile needs at least one measured call")
    if not 0 <= p <= 100:
        raise ValueError(f"p must be between 0 and 100, got {p}")
    return sorted(values)[max(1, math.ceil(p / 100 * len(values))) - 1]


@dataclass(frozen=True)
class Summary:
    """One configuration's measured calls, summarised (latencies in seconds)."""

    calls: int
    errors: int
    duration: float  # seconds of the measured window
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @property
    def throughput(self) -> float:
        """Successful calls per second over the measured window."""
        return self.calls / self.duration if self.duration > 0 else 0.0


def summarize(latencies: Sequence[float], duration: float, errors: int = 0) -> Summary:
    """Summary of the successful calls' latencies over a window of ``duration`` seconds."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if not latencies:
        return Summary(0, errors, duration, *[math.nan] * 5)
    return Summary(len(latencies), errors, duration, sum(latencies) / len(latencies),
                   *(percentile(latencies, p) for p in (50, 90, 99)), max(latencies))


def littles_law_ratio(throughput: float, mean_latency: float, concurrency: float) -> float:
    """lambda x W / L: 1.0 when Little's law holds with L = ``concurrency``. A closed loop's L
    is its clients, so it reads ~1 by construction: it checks the bookkeeping (every call
    counted, no time lost between calls), not the load generator (its CPU and loop lag do)."""
    if concurrency <= 0:
        raise ValueError(f"concurrency must be positive, got {concurrency}")
    return throughput * mean_latency / concurrency


def mean_in_flight(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Time-average calls in flight in [start, end): an open loop's L, which is not fixed."""
    if end <= start:
        raise ValueError("the window must have end > start")
    busy = sum(max(0.0, min(done, end) - max(sent, start)) for sent, done in intervals)
    return busy / (end - start)


def poisson_schedule(rate: float, duration: float, seed: int = 0) -> list[float]:
    """Seeded intended send times in [0, duration) at ``rate`` per second; latency counts from
    these, so a late sender cannot hide queueing (coordinated omission)."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    gaps = map(random.Random(seed).expovariate, repeat(rate))  # exponential: Poisson arrivals
    return list(takewhile(lambda t: t < duration, accumulate(gaps)))


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C); ``offered`` in erlangs."""
    if servers < 1:
        raise ValueError(f"servers must be 1 or more, got {servers}")
    if offered >= servers:
        return 1.0
    # a^k / k! for k < c, each from the last: no factorial overflows a float
    terms = list(accumulate(range(1, servers), lambda term, k: term * offered / k, initial=1.0))
    last = terms[-1] * offered / (servers - offered)  # a^c / c! * c / (c - a)
    return last / (sum(terms) + last)


def mmc_latency(arrival_rate: float, service_time: float, servers: int) -> float:
    """Mean time in an M/M/c system (queue + service), in seconds; inf when overloaded."""
    mu = 1.0 / service_time
    if arrival_rate >= servers * mu:
        return math.inf
    return erlang_c(servers, arrival_rate / mu) / (servers * mu - arrival_rate) + service_time


def mdc_latency(arrival_rate: float, service_time: float, servers: int) -> float:
    """Mean time in an M/D/c system by the classic Wq(M/D/c) = Wq(M/M/c) / 2 (exact for c = 1,
    Pollaczek-Khinchine): a fixed service time halves the queueing of a random one."""
    return (mmc_latency(arrival_rate, service_time, servers) - service_time) / 2 + service_time
