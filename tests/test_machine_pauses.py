"""The pause guard: only a failure across a frozen machine becomes a skip (``machine_pauses``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from machine_pauses import PAUSE, TICK, lost_time

INNER_CONFTEST = """
from machine_pauses import PauseWatch, SkipAcrossPauses

WATCH = PauseWatch()  # no thread: the tests below note their own pauses


def pytest_configure(config):
    config.pluginmanager.register(SkipAcrossPauses(WATCH), "machine-pauses")
"""

INNER_TESTS = """
from conftest import WATCH


def test_fails_across_a_pause():
    WATCH.note(60.0)
    assert False, "a timeout that measured the pause"


def test_fails_with_no_pause():
    assert False, "a real failure"


def test_passes_across_a_pause():
    WATCH.note(60.0)


def test_fails_across_a_short_stall():
    WATCH.note(1.0)
    assert False, "a stall this machine's load explains"
"""


def test_lost_time_counts_an_overrun_sleep_or_a_clock_jump_not_a_prompt_wake_up():
    assert lost_time(TICK, TICK) == 0
    assert lost_time(TICK + 0.002, TICK + 0.002) < 0.01  # woke a little late
    assert lost_time(60.0, 60.0) > PAUSE  # frozen, both clocks went on
    assert lost_time(TICK, 60.0) > PAUSE  # frozen, the wall clock jumped on resuming
    assert lost_time(TICK, -60.0) > PAUSE  # the wall clock stepped back


def test_only_a_failure_across_a_pause_is_skipped_and_the_skip_says_why(tmp_path: Path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout
    assert "2 failed, 1 passed, 1 skipped" in out, out
    assert "FAILED test_inner.py::test_fails_with_no_pause" in out, out
    assert "FAILED test_inner.py::test_fails_across_a_short_stall" in out, out
    assert "frozen for about 60 s" in out and "run it again" in out, out
