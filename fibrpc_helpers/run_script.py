"""``python -m fibrpc_helpers.run_script SCRIPT [ARGS...]``: run a notebook's own program as a
child that ends with the notebook's kernel.

A notebook can write a program of its own (``%%writefile``) and start it as a process
(``Notebook.script_process``), so that a student sees the whole program and nothing else in
it. Such a program knows nothing of the kernel that started it; if the kernel is killed
before its cleanup, the program would run on, connected to the broker, with nobody to stop
it. This wrapper runs the script unchanged, as ``python SCRIPT ARGS...`` would, with one
daemon thread beside it that ends the process once its stdin reaches end of file.

Its stdin is a pipe from the kernel: the operating system closes the kernel's end when the
kernel exits, however it exits, on every platform (``runtime.watch_parent`` polls the
parent's pid instead, which tells nothing on Windows). The script must not read stdin.
Tracebacks show a few frames of this wrapper (``runpy``) above the script's own.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
from pathlib import Path

from .runtime import PARENT_PID


def _exit_at_end_of_stdin() -> None:
    """Block until the kernel's end of the pipe closes, then end the process at once.

    It reads the file descriptor itself, not ``sys.stdin``: a thread blocked inside
    ``sys.stdin``'s buffer holds its lock, and Python aborts at exit when a daemon thread
    holds it (``Fatal Python error: _enter_buffered_busy``)."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:  # no stdin at all: the same as a closed one
        pass
    os._exit(1)  # the kernel is gone: nothing here is worth finishing


def main(argv: list[str]) -> None:
    """Run ``argv[0]`` as ``__main__`` with ``argv[1:]`` as its arguments."""
    if not argv:
        sys.exit("usage: python -m fibrpc_helpers.run_script SCRIPT [ARGS...]")
    script, *args = argv
    # The kernel's pid is ours to know, not the script's children's: a child of the script
    # that watches its parent (runtime.watch_parent) must watch the script.
    os.environ.pop(PARENT_PID, None)
    threading.Thread(target=_exit_at_end_of_stdin, daemon=True, name="exit with kernel").start()
    sys.argv = [script, *args]
    if not getattr(sys.flags, "safe_path", False):  # -P (3.11+) adds no folder to sys.path
        sys.path[0] = str(Path(script).resolve().parent)  # as `python SCRIPT` puts it first
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
