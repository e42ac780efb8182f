"""The progress bar of a run, in a terminal or in a Jupyter notebook (the notebook plumbing).

A terminal redraws a bar with carriage returns; a notebook keeps every write as a separate
output, so a saved notebook would hold each redraw. In a notebook the bar writes to one
display that each redraw replaces (by its display id): the saved notebook keeps the final
line only.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class NotebookLine:
    """Where the progress bar writes in a notebook: one output, updated in place."""

    encoding = "utf-8"

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        self._handle = DisplayHandle()
        self._shown = False

    def write(self, text: str) -> int:
        line = text.split("\r")[-1].rstrip("\n")
        if line.strip():
            data = {"text/plain": line}
            if self._shown:
                self._handle.update(data, raw=True)
            else:
                self._handle.display(data, raw=True)
                self._shown = True
        return len(text)

    def flush(self) -> None:
        pass


def in_notebook() -> bool:
    """True in a Jupyter kernel (ipykernel), where stdout is not a terminal."""
    if "ipykernel" not in sys.modules or sys.stdout.isatty():
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


class Progress:
    """A bar of ``total`` points; ``say`` prints a line without breaking the bar."""

    def __init__(self, total: int, what: str, *, enabled: bool) -> None:
        self.notebook = enabled and in_notebook()
        self.bar: Any = tqdm(
            total=total,
            desc=what,
            unit="point",
            disable=not enabled,
            file=NotebookLine() if self.notebook else sys.stdout,
            mininterval=0.5 if self.notebook else 0.1,
            ncols=90,
        )

    def update(self) -> None:
        self.bar.update()

    def say(self, line: str) -> None:
        # A terminal bar moves below the line; a notebook's bar is a display of its own.
        if self.bar.disable or self.notebook:
            print(line)
        else:
            self.bar.write(line)

    def close(self) -> None:
        self.bar.close()
