"""The latency benchmark of the series (``python -m fibrpc_helpers bench``): one idea per module.

``from fibrpc_helpers.bench import Bench`` works; the submodules are imported on first use,
so ``python -m fibrpc_helpers.bench.loadgen`` (a load-generator process) starts lean."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"Bench": "grid", "Call": "points", "Point": "points", "Preset": "presets",
            "PRESETS": "presets", "Work": "presets", "describe": "reports", "table": "reports",
            "TABLE": "reports"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
