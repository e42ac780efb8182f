"""What a benchmark run measures: the kinds of work, and the presets (``quick``, ``full``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Work:
    """What a worker does per request: fast exact fib(n), recursive fib(n), plus a sleep."""

    name: str
    n: int = 10
    work: str = "fast"  # "fast" or "recursive" (the tutorial's CPU-bound one)
    sleep_ms: float = 0.0  # I/O-like waiting per request


TRIVIAL = Work("trivial", n=10)


@dataclass(frozen=True)
class Preset:
    """How much to measure; ``quick`` fits CI and the notebook, ``full`` a classroom run."""

    name: str
    clients: tuple[int, ...]
    workers: tuple[int, ...]
    works: tuple[Work, ...]
    warmup: float  # seconds per point whose calls are recorded but not summarised
    duration: float  # measured seconds per point
    prefetch: int = 1
    loadgens: int = 2
    open_work: Work = Work("io-10ms", n=10, sleep_ms=10)
    open_workers: int = 2
    open_loads: tuple[float, ...] = (0.2, 0.5, 0.8)  # fractions of the capacity W / S
    design_clients: tuple[int, ...] = (1, 16)
    timeout: float = 10.0
    # CPU-bound points: a longer window (a short one measures who won the cores for a moment),
    # at fewer client counts (they cost the most time); None: as the others.
    cpu_warmup: float | None = None
    cpu_duration: float | None = None
    cpu_clients: tuple[int, ...] | None = None

    def window(self, work: Work) -> tuple[float, float]:
        """(warm-up, measured seconds) of a closed-loop point of ``work``."""
        if work.work != "recursive":
            return self.warmup, self.duration
        return (self.warmup if self.cpu_warmup is None else self.cpu_warmup,
                self.duration if self.cpu_duration is None else self.cpu_duration)

    def clients_of(self, work: Work) -> tuple[int, ...]:
        """The client counts C of the closed-loop points of ``work``."""
        if work.work == "recursive" and self.cpu_clients is not None:
            return self.cpu_clients
        return self.clients


PRESETS = {
    "quick": Preset(
        "quick", clients=(1, 4, 16), workers=(1, 2, 4),
        works=(Work("io-10ms", sleep_ms=10), Work("cpu-fib18", n=18, work="recursive")),
        warmup=0.1, duration=0.25, cpu_warmup=0.1, cpu_duration=1.0, cpu_clients=(1, 16),
        open_workers=4, open_loads=(0.3, 0.6, 0.85), design_clients=(1, 16),
    ),
    "full": Preset(
        "full", clients=(1, 2, 4, 8, 16, 32, 64), workers=(1, 2, 4, 8),
        works=(Work("io-10ms", sleep_ms=10), Work("cpu-fib20", n=20, work="recursive")),
        warmup=0.2, duration=0.5, open_workers=4, open_loads=(0.1, 0.3, 0.5, 0.7, 0.8, 0.9),
        design_clients=(1, 16, 64),
    ),
}
