"""The tuning ladder: from the reference to the fastest Python RPC here, one lever per rung.

Every rung beside ``aio_pika.patterns.RPC``, interleaved (``compare``), on classic request
queues (patterns.RPC declares a classic one): what each lever gives and what it gives up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ..lab.runtime import uvloop_installed
from .compare import Figures, interleaved
from .conclusions import verdict, versus
from .designs import Design
from .grid import Bench
from .presets import Preset

BASELINE = Design("patterns.RPC", "patterns", server="patterns")
REFERENCE_PREFETCH = 16

RUNGS = (
    Design("reference", "correlation-id", prefetch=REFERENCE_PREFETCH,
           gives_up="nothing: NoWorkerError, timeouts, expiration, trace hooks, reconnection"),
    Design("+ uvloop", "correlation-id", loop="uvloop", prefetch=REFERENCE_PREFETCH,
           gives_up="nothing in behaviour; uvloop has no Windows build, and a Jupyter kernel "
           "keeps its own loop"),
    Design("+ no confirms", "no-confirms", loop="uvloop", prefetch=REFERENCE_PREFETCH,
           gives_up="the publisher confirm, a quorum queue's only data-safety guarantee; with "
           "it NoWorkerError and BrokerRefusedError: a request no queue takes is only logged "
           "by aiormq, and its call times out"),
    Design("+ direct reply-to", "direct-no-confirms", loop="uvloop", prefetch=REFERENCE_PREFETCH,
           gives_up="queued replies: a reply whose client has gone is dropped by the broker"),
    Design("+ prefetch 64", "direct-no-confirms", loop="uvloop", prefetch=64,
           gives_up="fair dispatch: one worker holds up to 64 requests, redelivered if it dies"),
    Design("raw aiormq", "raw-aiormq", server="raw-aiormq", loop="uvloop", prefetch=64,
           gives_up="everything aio-pika and the reference add: reconnection, expiration, the "
           "deadline check, error replies, stray-reply counts, trace hooks"),
)
"""Each rung adds one lever to the one before it; the last drops aio-pika itself."""

WHY_NOT = {
    "reference": "both make the same round trips through the broker; they differ only in "
    "the Python each side runs per message",
    "+ uvloop": "uvloop makes the event loop's own work cheaper; aio-pika's Python and the "
    "broker's work per message stay as they were",
    "+ no confirms": "a confirm is one small frame per publish, beside the request and the "
    "reply that each cross the broker twice",
    "+ direct reply-to": "RabbitMQ's direct reply-to guide: its benefits are smaller for "
    "long-lived connections making many calls, where a classic reply queue is about as "
    "efficient; it is meant for scale (tens of thousands of requesters, a connection per "
    "call), and the guide advises against it for high throughput to one requester, since "
    "nothing buffers the replies",
    "+ prefetch 64": "with prefetch 16 and 64 clients the worker already had requests waiting "
    "whenever it finished one: there was no idle time for a larger prefetch to remove",
    "raw aiormq": "the broker's own work per message stays, whoever the client is",
}
"""Why a rung's change may not make calls faster, printed when in a run it did not."""


@dataclass
class Ladder:
    """The baseline's and every rung's figures, and the ratios against the baseline."""

    baseline: Figures
    rungs: list[Figures]
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    many: int = 64

    def ratios(self, figures: Figures) -> tuple[float, float]:
        """(throughput at C=many, p50 at C=1), each as a multiple of the baseline's."""
        return (figures.throughput / self.baseline.throughput,
                figures.p50_ms / self.baseline.p50_ms)

    @property
    def fastest(self) -> Figures:
        return max(self.rungs, key=lambda figures: figures.throughput)

    def table(self) -> str:
        """One line per rung (the baseline first): figures, ratios, CPU per call."""
        lines = [f"{'rung':18} {'calls/s C=' + str(self.many):>14} {'x':>6} {'p50 C=1':>9} "
                 f"{'x':>6}   CPU ms per call: clients worker broker"]
        for figures in [self.baseline, *self.rungs]:
            rate, p50 = self.ratios(figures)
            cpu = figures.cpu_ms
            lines.append(f"{figures.design.name:18} {figures.throughput:14.0f} {rate:5.2f}x "
                         f"{figures.p50_ms:6.2f} ms {p50:5.2f}x   {cpu['clients']:20.3f} "
                         f"{cpu['worker']:6.3f} {cpu['broker']:6.3f}")
        return "\n".join(lines)

    def gives_up(self) -> str:
        return "\n".join(f"{f.design.name}: gives up {f.design.gives_up}" for f in self.rungs)

    def narrative(self) -> str:
        """Each rung against the one above it (its own lever's effect), and ``WHY_NOT``."""
        lines = []
        for above, figures in pairwise([self.baseline, *self.rungs]):
            rate, p50 = figures.throughput / above.throughput, figures.p50_ms / above.p50_ms
            name = figures.design.name
            lines.append(versus(name, above.design.name, rate, p50, self.many))
            if not verdict(rate, p50).startswith("faster") and name in WHY_NOT:
                lines.append(f"    why it may not be faster: {WHY_NOT[name]}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """The last line of ``bench ladder``."""
        best = self.fastest
        rate, p50 = self.ratios(best)
        return (f"fastest rung: {best.design.name}: {rate:.2f}x patterns.RPC throughput at "
                f"C={self.many}, {p50:.2f}x its p50 at C=1")


def ladder(url: str | None = None, *, rounds: int = 4, warmup: float = 0.2,
           duration: float = 0.6, many: int = 64, loadgens: int = 2,
           rungs: tuple[Design, ...] = RUNGS, progress: bool = True, verbose: bool = False,
           bench: Bench | None = None) -> Ladder:
    """Measure patterns.RPC and every rung side by side, ``rounds`` interleaved rounds."""
    if any(rung.loop == "uvloop" for rung in rungs) and not uvloop_installed():
        raise RuntimeError("the ladder's uvloop rungs need uvloop: `pip install uvloop` (it has "
                           "no Windows build; pass rungs= without them there)")
    preset = Preset("ladder", clients=(), workers=(), works=(), warmup=warmup,
                    duration=duration, loadgens=loadgens)
    own = bench is None
    bench = bench or Bench(preset, url=url, progress=progress, verbose=verbose).start()
    try:
        figures = interleaved(bench, [BASELINE, *rungs], rounds=rounds, many=many,
                              queue_type="classic", kind="rung", what="ladder")
        return Ladder(figures[0], figures[1:], [row for f in figures for row in f.rows], many)
    finally:
        if own:
            bench.close()


def machine() -> str:
    """What the figures were measured on (they hold for this machine only)."""
    return f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} when it ended"
