"""``python -m fibrpc_helpers.run_script SCRIPT [ARGS...]``: run a notebook's own program as a
child that ends with the notebook's kernel.

A notebook can write a program of its own (``%%writefile``) and start it as a process
(``Notebook.script_process``), so that a student sees the whole program and nothing else in
it. Such a program knows nothing of the kernel that started it; if the kernel is killed
before its cleanup, the program would run on, connected to the broker, with nobody to stop
it. This wrapper runs the script unchanged, as ``python SCRIPT ARGS...`` would, with one
daemon thread beside it that ends the process once the parent that started it is gone (on
Linux and macOS; see ``runtime.watch_parent`` for Windows).
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
from pathlib import Path

from .runtime import started_by

CHECK_EVERY = 0.5
"""Seconds between two looks at whether the parent still runs."""


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(CHECK_EVERY)
    os._exit(1)  # the kernel is gone: nothing here is worth finishing


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m fibrpc_helpers.run_script SCRIPT [ARGS...]")
    script, *args = argv
    guard = threading.Thread(
        target=_exit_with_parent, args=(started_by(),), daemon=True, name="exit with parent"
    )
    guard.start()
    sys.argv = [script, *args]
    sys.path[0] = str(Path(script).resolve().parent)  # as `python SCRIPT` would
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
