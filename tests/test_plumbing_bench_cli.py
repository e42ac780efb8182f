"""`bench ratios` is gone: the ladder's first two rows (patterns.RPC, the reference) are its
comparison, measured the same way; the CLI, the package and `make bench` say so."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_offers_the_ladder_and_no_ratios() -> None:
    helped = subprocess.run([sys.executable, "-m", "fibrpc_helpers", "bench", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "ladder" in helped.stdout and "ratios" not in helped.stdout
    refused = subprocess.run([sys.executable, "-m", "fibrpc_helpers", "bench", "ratios"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "invalid choice: 'ratios'" in refused.stderr


def test_the_package_and_make_bench_have_no_ratios() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fibrpc_helpers.bench.ratios")
    bench = importlib.import_module("fibrpc_helpers.bench")
    assert "ratios" not in bench.__all__ and "Ratios" not in bench.__all__
    target = re.search(r"^bench:.*?(?=^\S|\Z)", (ROOT / "Makefile").read_text(), re.M | re.S)
    assert target is not None
    assert "bench ladder" in target.group() and "ratios" not in target.group()


def test_the_ladder_starts_with_patterns_rpc_then_the_reference() -> None:
    from fibrpc_helpers.bench.ladder import BASELINE, RUNGS

    assert BASELINE.server == "patterns" and RUNGS[0].name == "reference"
