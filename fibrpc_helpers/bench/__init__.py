"""The latency benchmark of the series: ``python -m fibrpc_helpers bench [quick|full|ratios]``.

Modules, one idea each: ``stats`` (percentiles, Little's law, Poisson arrivals, queueing
models), ``cpu`` (whose CPU was busy), ``designs`` (the four RPC designs as clients),
``loadgen`` (load-generator processes), ``grid`` (the runner and its presets), ``plots``
(the figures), ``conclusions`` (sentences chosen from the measured numbers and the machine's
cores) and ``ratios`` (the side-by-side speed comparison with aio_pika.patterns.RPC).

``from fibrpc_helpers.bench import Bench`` works; the submodules are imported on first use,
so ``python -m fibrpc_helpers.bench.loadgen`` (a load-generator process) starts lean.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Bench": "grid",
    "Point": "grid",
    "Preset": "grid",
    "PRESETS": "grid",
    "Work": "grid",
    "describe": "grid",
    "table": "grid",
    "TABLE": "grid",
    "ratios": "ratios",
    "Ratios": "ratios",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
