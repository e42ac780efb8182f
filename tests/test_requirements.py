"""The lower bounds in requirements.txt can be installed together.

``make test-oldest`` runs the whole suite with every package at its lower bound; it is too
slow to run on every change, so a bound that conflicts with another (pytest-asyncio 0.24
needs pytest 8.2, nbgrader 0.9.6 needs JupyterLab 4.2) would go unseen until someone ran it.
pip's resolver, asked for a dry run, finds such a conflict in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_lower_bound_is_a_pin() -> None:
    """Each requirement has a lower bound that tools/lower-bounds turns into a pin: one
    without (a bare name, or only an upper bound) would float to its newest release in
    ``make test-oldest`` and leave its oldest version untested."""
    pins = subprocess.run(["sh", str(ROOT / "tools" / "lower-bounds")], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.split()
    names = {pin.split("==")[0] for pin in pins}
    required = {
        line.split(">=")[0].split("==")[0].split(";")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    }
    assert names == required, f"no lower bound pinned for {sorted(required - names)}"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason="the lower bounds are tested on the oldest Python supported, 3.11")
@pytest.mark.timeout(300)
def test_the_lower_bounds_resolve_together(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(subprocess.run(
        ["sh", str(ROOT / "tools" / "lower-bounds")], cwd=ROOT,
        capture_output=True, text=True, check=True).stdout)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
        env={**os.environ, "PIP_CONSTRAINT": str(constraints)},
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    if done.returncode and any(sign in done.stderr for sign in (
            "NewConnectionError", "Failed to establish", "name resolution", "ConnectTimeout",
            "ReadTimeoutError", "Max retries exceeded", "Could not fetch URL")):
        pytest.skip("not run: pip could not reach the package index:\n" + "\n".join(errors))
    assert done.returncode == 0, "the lower bounds conflict:\n" + "\n".join(errors)
