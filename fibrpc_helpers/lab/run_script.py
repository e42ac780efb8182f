"""``python -m fibrpc_helpers.lab.run_script SCRIPT [ARGS...]``: run a notebook's own program
(``Notebook.script_process``) as ``python SCRIPT ARGS...`` would, as a child that ends with the
kernel, even a killed one (``runtime.hold_lifeline``); the script must not read stdin."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from .runtime import hold_lifeline


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m fibrpc_helpers.lab.run_script SCRIPT [ARGS...]")
    hold_lifeline()  # the kernel is gone: nothing here is worth finishing
    sys.argv = argv
    if not getattr(sys.flags, "safe_path", False):  # -P (3.11+) adds no folder to sys.path
        sys.path[0] = str(Path(argv[0]).resolve().parent)  # as `python SCRIPT` puts it first
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
