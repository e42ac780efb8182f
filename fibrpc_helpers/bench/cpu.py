"""Whose CPU was busy during a measurement: broker (``beam.smp``), workers, load generators.

psutil's CPU times (user + system) over the measured window, in % of one core. A reading that
cannot be had is unknown (NaN), never 0, so the latencies are still reported."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

NOT_AVAILABLE = "CPU use not available here (psutil cannot read this machine's CPU times)"
SATURATED = 90.0  # % of one core at which a single-threaded process counts as saturated


def _psutil() -> ModuleType | None:
    """psutil, imported when first needed: its import reads /proc, which a test takes away."""
    try:
        import psutil
    except (ImportError, OSError):
        return None
    return psutil


def available() -> bool:
    return machine_cpu_seconds() is not None


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid``; None when it is gone or unknown."""
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.Error, OSError):
        return None
    return times.user + times.system


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, over every core, or None."""
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        fields = psutil.cpu_times()._asdict()
    except (psutil.Error, OSError, NotImplementedError):
        return None
    # Summed, not total minus idle (which can come out below zero); guest is in user already.
    not_busy = ("idle", "iowait", "guest", "guest_nice")
    busy = sum(seconds for name, seconds in fields.items() if name not in not_busy)
    return busy, busy + fields["idle"] + fields.get("iowait", 0.0)


def broker_pid(port: int = 5672) -> int | None:
    """The local ``beam.smp`` listening on ``port``, else the only one running, else None."""
    psutil = _psutil()
    if psutil is None or not available():
        return None
    try:  # every listening socket with its process (another user's needs root on macOS)
        listening = {c.pid for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port}
    except (psutil.Error, OSError):
        listening = set()
    beams = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"]
    return next((pid for pid in beams if pid in listening), beams[0] if len(beams) == 1 else None)


@dataclass
class CpuUse:
    """CPU used over one window, in % of one core, per role (several pids per role)."""

    seconds: float
    roles: dict[str, list[float]] = field(default_factory=dict)
    machine: float = math.nan  # % of one core used by everything, all cores together
    cores: int = os.cpu_count() or 1
    available: bool = True  # False where the machine's CPU use cannot be read (no /proc)

    def total(self, role: str) -> float:
        shares = self.roles.get(role, [])
        return sum(shares) if shares else math.nan

    def peak(self, role: str) -> float:
        return max(self.roles.get(role, []), default=math.nan)

    def bottleneck(self) -> str:
        """A short verdict: who was saturated, in order of how sure that is."""
        if not self.available:
            return NOT_AVAILABLE
        # single-threaded Python: one core is a worker's or a load generator's limit
        busy = [role for role in ("workers", "load generators") if self.peak(role) >= SATURATED]
        if self.total("broker") >= SATURATED:
            busy.append("broker")
        if self.machine >= SATURATED * self.cores:
            others = max(0.0, self.machine - sum(map(sum, self.roles.values())))
            shares = ", ".join(f"{role} {self.total(role):.0f}%" for role in self.roles)
            verdict = f"machine CPU full ({shares}, other programs {others:.0f}%)"
            return verdict + (": " + " and ".join(busy) + " saturated" if busy else "")
        if busy:
            return " and ".join(busy) + " CPU-bound"
        return "no CPU saturated: latency-bound (service time, round trips)"


class CpuMeter:
    """Measures CPU use per role between ``start()`` and ``stop()``."""

    def __init__(self, roles: Mapping[str, Iterable[int | None]]) -> None:
        self.pids = {role: [pid for pid in pids if pid] for role, pids in roles.items()}
        self._start: dict[int, float | None] = {}
        self._machine: tuple[float, float] | None = None
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._machine = machine_cpu_seconds()
        self._start = {pid: process_cpu_seconds(pid) for p in self.pids.values() for pid in p}

    def stop(self) -> CpuUse:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        before, after = self._machine, machine_cpu_seconds()
        use = CpuUse(elapsed, cores=os.cpu_count() or 1, available=after is not None)
        if before is not None and after is not None and after[1] > before[1]:
            use.machine = (after[0] - before[0]) / (after[1] - before[1]) * 100 * use.cores
        for role, pids in self.pids.items():
            readings = ((self._start.get(pid), process_cpu_seconds(pid)) for pid in pids)
            use.roles[role] = [(end - begin) / elapsed * 100 for begin, end in readings
                               if begin is not None and end is not None]
        return use
