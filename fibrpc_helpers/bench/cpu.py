"""Whose CPU was busy during a measurement: broker, workers, load generators, the machine.

A latency number means little without what limited it. Linux keeps each process's CPU time
in /proc/<pid>/stat (utime + stime, in clock ticks) and the machine's in /proc/stat; the
difference over the measured window divided by its length is the CPU used, where 100 % is
one core. The broker is the Erlang VM (``beam.smp``) listening on the AMQP port.

Only Linux has /proc. Elsewhere (macOS, Windows) every reading is unknown: ``CpuUse.available``
is False, its figures are NaN and its verdict says "not available here", so a benchmark still
runs and reports its latencies, with CPU unknown rather than wrong.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")  # where the readings come from; a test points it at an empty directory
NOT_AVAILABLE = "CPU use not available here (it is read from /proc, which only Linux has)"
SATURATED = 90.0  # % of one core at which a single-threaded process counts as saturated


def available() -> bool:
    """Whether this machine's CPU use can be read (Linux's /proc is there)."""
    return (PROC / "stat").is_file()


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid``; None when it is gone or unknown."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, summed over every core; None
    where that cannot be read."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS, sum(values[:8]) / _TICKS


def broker_pid(port: int = 5672) -> int | None:
    """The pid of the local process listening on ``port`` (the broker), if it can be found.

    Looks up the listening socket's inode in /proc/net/tcp{,6}, then the process holding it;
    falls back to the only ``beam.smp`` process. None for a remote broker, and where there is
    no /proc.
    """
    if not available():
        return None
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    beams = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "beam.smp":
                continue
            beams.append(int(entry.name))
            if inodes and any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return beams[0] if len(beams) == 1 else None


@dataclass
class CpuUse:
    """CPU used over one window, in % of one core, per role (several pids per role).

    A role with no reading (a remote broker, a process gone, no /proc) counts as unknown (NaN),
    never as 0 %: an idle process and an unmeasured one must not look alike."""

    seconds: float
    roles: dict[str, list[float]] = field(default_factory=dict)
    machine: float = float("nan")  # % of one core used by everything, all cores together
    cores: int = os.cpu_count() or 1
    available: bool = True  # False where CPU use cannot be read at all (no /proc)

    def total(self, role: str) -> float:
        shares = self.roles.get(role, [])
        return sum(shares) if shares else math.nan

    def peak(self, role: str) -> float:
        return max(self.roles.get(role, []), default=math.nan)

    def bottleneck(self) -> str:
        """A short verdict: who was saturated, in order of how sure that is."""
        if not self.available:
            return NOT_AVAILABLE
        busy = [
            role
            for role in ("workers", "load generators")
            if self.peak(role) >= SATURATED  # single-threaded Python: one core is its limit
        ]
        if self.total("broker") >= SATURATED:
            busy.append("broker")
        if self.machine >= SATURATED * self.cores:
            ours = sum(sum(shares) for shares in self.roles.values())
            others = max(0.0, self.machine - ours)
            shares = ", ".join(f"{role} {self.total(role):.0f}%" for role in self.roles)
            verdict = f"machine CPU full ({shares}, other programs {others:.0f}%)"
            return verdict + (": " + " and ".join(busy) + " saturated" if busy else "")
        if busy:
            return " and ".join(busy) + " CPU-bound"
        return "no CPU saturated: latency-bound (service time, round trips)"

    def describe(self) -> str:
        if not self.available:
            return NOT_AVAILABLE
        parts = [f"{role} {self.total(role):.0f}%" for role in self.roles]
        parts.append(f"machine {self.machine:.0f}% of {self.cores * 100}%")
        return ", ".join(parts)


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
        cores = os.cpu_count() or 1
        machine = math.nan
        if before is not None and after is not None and after[1] > before[1]:
            machine = (after[0] - before[0]) / (after[1] - before[1]) * 100 * cores
        use = CpuUse(elapsed, machine=machine, cores=cores, available=after is not None)
        for role, pids in self.pids.items():
            shares = []
            for pid in pids:
                before, after = self._start.get(pid), process_cpu_seconds(pid)
                if before is not None and after is not None:
                    shares.append((after - before) / elapsed * 100)
            use.roles[role] = shares
        return use
