"""What one measurement point holds: every call it made, and the summary row they give."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .cpu import CpuUse
from .presets import Work
from .stats import littles_law_ratio, mean_in_flight, summarize

# A point is flagged when its load generators' typical lag (``LoopLag.mean``) is this share of
# its p50 or more: that much may be their own delay; less is within these short points' noise.
LAG_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class Call:
    """One call a load generator made; times in seconds from the run's start."""

    client: int  # the client's number in the point
    intended: float  # when it was meant to be sent (open loop: its Poisson arrival)
    sent: float
    done: float
    error: str = ""  # the exception's type name; "" when it returned a result

    @property
    def latency(self) -> float:
        """From the intended send: a call that waited to be sent waited for the system."""
        return self.done - self.intended


@dataclass(frozen=True)
class LoopLag:
    """How late a load generator's event loop was during one window, beyond its idle slack."""

    worst: float  # seconds: the longest single stall
    mean: float  # seconds: about a typical reply's extra wait (ticks fall unrelated to replies)


@dataclass(kw_only=True)
class Point:
    """One measured configuration: its calls and their summary."""

    kind: str  # "closed", "open", "design" (or a ladder's "rung")
    design: str
    work: Work
    workers: int
    clients: int
    prefetch: int
    warmup: float
    duration: float
    offered: float = math.nan  # open loop: calls per second offered; nan for a closed loop
    records: list[Call] = field(default_factory=list, repr=False)
    cpu: CpuUse | None = None
    service_ms: float = math.nan  # open loop: the service time S its offered load assumed
    loop_lags: list[LoopLag] = field(default_factory=list)  # one per load generator

    def measured(self) -> list[Call]:
        """Calls whose intended start falls in the measured window (after the warm-up)."""
        end = self.warmup + self.duration
        return [call for call in self.records if self.warmup <= call.intended < end]

    def latencies(self) -> list[float]:
        return [call.latency for call in self.measured() if not call.error]

    def row(self) -> dict[str, Any]:
        """The summary row: percentiles in ms, throughput, Little's law, CPU, bottleneck."""
        measured = self.measured()
        s = summarize(self.latencies(), self.duration, sum(1 for c in measured if c.error))
        concurrency = float(self.clients)
        if self.kind == "open":
            spans = [(call.intended, call.done) for call in self.records]
            concurrency = mean_in_flight(spans, self.warmup, self.warmup + self.duration)
        lags, cpu, nan = self.loop_lags, self.cpu or CpuUse(0.0), math.nan  # unread: NaN
        lag_ms = max(lag.mean for lag in lags) * 1e3 if lags else nan
        # nan when there is no lag or no p50: nan >= LAG_SHARE is False, never flagged
        share = lag_ms / (s.p50 * 1e3) if s.calls and s.p50 > 0 else nan
        return {
            "kind": self.kind, "design": self.design, "work": self.work.name,
            "workers": self.workers, "clients": self.clients, "prefetch": self.prefetch,
            "offered": self.offered, "service_ms": self.service_ms, "calls": s.calls,
            "errors": s.errors,
            # The arrival rate an open loop really achieved (its offered rate is only the target).
            "arrivals": len(measured) / self.duration, "throughput": s.throughput,
            "mean_ms": s.mean * 1e3, "p50_ms": s.p50 * 1e3, "p90_ms": s.p90 * 1e3,
            "p99_ms": s.p99 * 1e3, "max_ms": s.max * 1e3, "in_system": concurrency,
            "littles": littles_law_ratio(s.throughput, s.mean, concurrency) if s.calls else nan,
            "cpu_broker": cpu.total("broker"), "cpu_workers": cpu.total("workers"),
            "cpu_worker_peak": cpu.peak("workers"), "cpu_loadgen_peak": cpu.peak("load generators"),
            "cpu_loadgens": cpu.total("load generators"), "cpu_machine": cpu.machine,
            "bottleneck": cpu.bottleneck() if self.cpu else "",
            # ``LoopLag``: the longest stall in any generator, the laggier one's mean.
            "loop_lag_ms": max(lag.worst for lag in lags) * 1e3 if lags else nan,
            "loop_lag_mean_ms": lag_ms, "loadgen_share": share,
            "loadgen_lagging": share >= LAG_SHARE,
        }
