"""The progress bar of a run, in a terminal or in a Jupyter notebook.

A terminal redraws a bar with carriage returns. In a notebook the bar writes to
``notebook.NotebookLine`` (the notebook plumbing), one display that each redraw replaces.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from ..lab.notebook import NotebookLine, in_notebook


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
