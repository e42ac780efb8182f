"""The latency benchmark of the series: ``python -m fibrpc_helpers bench PRESET``.

Presets: ``quick``, ``full`` and ``ladder`` (see ``command``).

Modules, one idea each: ``presets`` (what a run measures), ``points`` (a point's calls and
its summary row), ``reports`` (printed lines, tables, CSVs), ``grid`` (the runner: it owns
the processes, measures points and draws the progress bar), ``loadgen`` (load-generator
processes), ``serve`` (the benchmark's worker processes), ``designs`` (the reference client
with one part swapped, and aio_pika.patterns.RPC), ``compare`` (designs side by side,
interleaved), ``ladder`` (the reference and its tuned rungs against patterns.RPC), ``stats``
(percentiles, Little's law, Poisson arrivals, queueing models), ``cpu`` (whose CPU was
busy), ``plots`` (the figures) and ``conclusions`` (every comparative sentence, chosen from
the measured numbers and the machine's cores).

``from fibrpc_helpers.bench import Bench`` works; the submodules are imported on first use,
so ``python -m fibrpc_helpers.bench.loadgen`` (a load-generator process) starts lean.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Bench": "grid",
    "Call": "points",
    "Point": "points",
    "Preset": "presets",
    "PRESETS": "presets",
    "Work": "presets",
    "describe": "reports",
    "table": "reports",
    "TABLE": "reports",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
