"""A test that fails across a pause of the whole machine is reported as skipped, saying so.

The machines these tests run on are virtual, and can be frozen (for a snapshot) and resumed
with their clocks jumped. Every timeout in flight then expires at once, and the worker's
deadline check, which reads the wall clock (the ``x-deadline`` header), drops requests sent a
moment before. A test that fails across such a pause measured the pause, not our code.

The watch is a thread that only sleeps, ``TICK`` at a time. It wakes late only when the whole
process did not run, and each time it wakes it also checks whether the wall clock moved apart
from the monotonic one. No load on these machines makes a 0.1 s sleep last ``PAUSE`` seconds,
so a pause that long is the machine's, and a test it hits is not failed for it.
"""

from __future__ import annotations

import threading
import time

import pytest

TICK = 0.1
PAUSE = 5.0  # seconds lost that only a frozen machine explains

_STARTED = pytest.StashKey[float]()


def lost_time(monotonic_gap: float, wall_gap: float, tick: float = TICK) -> float:
    """Seconds lost between two readings ``tick`` apart: how much the sleep overran, or how
    far the wall clock moved apart from the monotonic one, whichever is more."""
    return max(monotonic_gap - tick, abs(wall_gap - monotonic_gap))


class PauseWatch:
    """The pauses seen so far, each as (monotonic time it was seen, seconds lost)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []

    def start(self) -> PauseWatch:
        threading.Thread(target=self._watch, name="machine-pause-watch", daemon=True).start()
        return self

    def note(self, seconds: float) -> None:
        self.pauses.append((time.monotonic(), seconds))

    def lost_since(self, moment: float) -> float:
        return sum(seconds for seen, seconds in self.pauses if seen >= moment)

    def _watch(self) -> None:
        monotonic, wall = time.monotonic(), time.time()
        while True:
            time.sleep(TICK)
            now_monotonic, now_wall = time.monotonic(), time.time()
            lost = lost_time(now_monotonic - monotonic, now_wall - wall)
            if lost >= PAUSE:
                self.note(lost)
            monotonic, wall = now_monotonic, now_wall


class SkipAcrossPauses:
    """The pytest plugin: a failed test during which the machine paused becomes a skip."""

    def __init__(self, watch: PauseWatch) -> None:
        self.watch = watch

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.stash[_STARTED] = time.monotonic()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        outcome = yield
        report = outcome.get_result()
        if not report.failed or _STARTED not in item.stash:
            return
        lost = self.watch.lost_since(item.stash[_STARTED])
        if lost >= PAUSE:
            path, line, _ = item.location
            report.outcome = "skipped"
            report.longrepr = (
                path,
                (line or 0) + 1,
                f"Skipped: this machine was frozen for about {lost:.0f} s while the test ran "
                "(a virtual machine's snapshot?), so its timeouts and clocks measured the "
                "pause; it failed, and the failure says nothing about the code: run it again",
            )
