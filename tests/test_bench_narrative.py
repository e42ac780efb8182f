"""Every comparative sentence of the latency notebook comes from the run's numbers: fed
numbers that make each lever lose, the sentences say each was slower; fed numbers that make
each win, they say each was faster. No sentence promises an effect the figures do not show."""

from __future__ import annotations

import math

import pytest

from fibrpc_helpers.bench.compare import Figures
from fibrpc_helpers.bench.conclusions import (
    CLEAR,
    compute_share,
    direction,
    verdict,
    versus,
)
from fibrpc_helpers.bench.ladder import BASELINE, RUNGS, WHY_NOT, Ladder


def _ladder(step: float) -> Ladder:
    """patterns.RPC at 1000 calls/s and 1 ms p50, each rung ``step`` times the one above in
    throughput and 1 / ``step`` times in p50 (step > 1: every lever wins)."""
    rungs = [Figures(rung, throughput=1000 * step ** (i + 1), p50_ms=step ** -(i + 1))
             for i, rung in enumerate(RUNGS)]
    return Ladder(Figures(BASELINE, throughput=1000, p50_ms=1.0), rungs)


def _lines(ladder: Ladder) -> dict[str, str]:
    """Each rung's verdict line, by rung name (the 'why' lines left out)."""
    said = [line for line in ladder.narrative().splitlines() if not line.startswith(" ")]
    return {line.split(":")[0]: line for line in said}


def test_when_every_lever_loses_every_rung_says_it_was_slower_and_why() -> None:
    ladder = _ladder(0.7)
    lines = _lines(ladder)
    assert list(lines) == [rung.name for rung in RUNGS]
    for line in lines.values():
        assert "slower here (fewer calls/s, a higher p50)" in line, line
    for name in WHY_NOT:
        assert f"why it may not be faster: {WHY_NOT[name]}" in ladder.narrative()
    assert "direct reply-to guide" in WHY_NOT["+ direct reply-to"]


def test_when_every_lever_wins_every_rung_says_it_was_faster_and_gives_no_excuse() -> None:
    ladder = _ladder(1.5)
    for line in _lines(ladder).values():
        assert "faster here (more calls/s, a lower p50)" in line, line
    assert "why it may not be faster" not in ladder.narrative()
    assert ladder.verdict().startswith("fastest rung: raw aiormq")


def test_each_rung_is_judged_against_the_rung_above_not_the_baseline() -> None:
    """A rung that loses to the one above it lost, however far above patterns.RPC it is."""
    ladder = _ladder(1.5)
    direct = next(f for f in ladder.rungs if f.design.name == "+ direct reply-to")
    direct.throughput, direct.p50_ms = direct.throughput * 0.5, direct.p50_ms * 2
    lines = _lines(ladder)
    assert direct.throughput > ladder.baseline.throughput  # still above patterns.RPC
    assert "+ direct reply-to: 0.75x the calls/s of + no confirms" in lines["+ direct reply-to"]
    assert "slower here" in lines["+ direct reply-to"]
    assert "faster here" in lines["+ prefetch 64"]  # 3x the weakened rung above it


@pytest.mark.parametrize(
    ("throughput", "p50", "said"),
    [
        (1.5, 0.5, "faster here (more calls/s, a lower p50)"),
        (1.5, 1.0, "faster here (more calls/s)"),
        (1.0, 0.5, "faster here (a lower p50)"),
        (0.5, 2.0, "slower here (fewer calls/s, a higher p50)"),
        (1.0, 2.0, "slower here (a higher p50)"),
        (0.5, 1.0, "slower here (fewer calls/s)"),
        (1.5, 2.0, "a trade here (more calls/s, a higher p50)"),
        (0.5, 0.5, "a trade here (fewer calls/s, a lower p50)"),
        (1.1, 0.9, "no clear difference here (within 1.2x either way)"),
        (1.5, math.nan, "not compared here: a point had no measured call (a stall on a busy "
         "machine)"),
    ],
)
def test_the_verdict_reads_both_ratios(throughput: float, p50: float, said: str) -> None:
    assert verdict(throughput, p50) == said


def test_a_difference_within_clear_is_no_difference() -> None:
    assert direction(CLEAR) == 1 and direction(1 / CLEAR) == -1
    assert direction(CLEAR * 0.99) == 0 == direction(1 / CLEAR * 1.01)


def test_a_design_or_queue_type_against_another_says_what_this_run_measured() -> None:
    slower = versus("direct-reply-to", "correlation-id", 1.02, 1.22, 16)
    assert slower == ("direct-reply-to: 1.02x the calls/s of correlation-id at C=16, 1.22x "
                      "its p50 at C=1: slower here (a higher p50)")
    faster = versus("direct-reply-to", "correlation-id", 1.02, 0.7, 16)
    assert faster.endswith("faster here (a lower p50)")
    assert versus("quorum", "classic", 0.42, 1.62, 16).endswith(
        "slower here (fewer calls/s, a higher p50)")


def _row(workers: int, clients: int, throughput: float, machine: float) -> dict[str, object]:
    return {"work": "cpu", "workers": workers, "clients": clients, "throughput": throughput,
            "cpu_machine": machine}


def test_the_compute_share_of_a_call_comes_from_the_busiest_point() -> None:
    rows = [_row(1, 16, 300, 120.0), _row(4, 16, 600, 180.0), _row(4, 1, 250, 100.0)]
    said = compute_share(rows, "cpu", 1.0)  # 180 % / 600 calls/s = 3 ms of CPU per call
    assert "W = 4, C = 16" in said and "3.0 ms of CPU" in said and "(33%)" in said
    assert said.endswith("most of a call is messaging")
    assert compute_share(rows, "cpu", 2.5).endswith("most of a call is computing")
    unknown = [_row(2, 4, 100, math.nan)]
    assert "could not be read" in compute_share(unknown, "cpu", 1.0)
    with pytest.raises(ValueError, match="run the closed grid"):
        compute_share(rows, "io", 1.0)
