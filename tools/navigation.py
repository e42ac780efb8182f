#!/usr/bin/env python3
"""Write the navigation of the notebook series: previous / contents / next links at the top
and bottom of every notebook, and the table of contents in 00_start_here.

The links are generated from the notebooks that exist (``notebooks/NN_*.ipynb``, in name
order) and their titles (the first ``# `` heading), never maintained by hand. Run it after
adding, renaming or retitling a notebook:

    .venv/bin/python tools/navigation.py          # rewrite the navigation cells
    .venv/bin/python tools/navigation.py --check  # exit 1 and list what drifted

The navigation lives in markdown cells whose metadata has ``fibrpc.navigation`` = ``top``,
``bottom`` or (in 00 only) ``contents``; a notebook without top or bottom cells gets them
inserted as its first and last cells. ``tests/test_navigation.py`` fails when they drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CONTENTS_NOTEBOOK = "00_start_here.ipynb"
KEY = "fibrpc"  # cell metadata key; the value is {"navigation": "top" | "bottom" | "contents"}


def notebook_paths(folder: Path = NOTEBOOKS) -> list[Path]:
    """The notebooks of the series, in order: ``NN_name.ipynb`` files that exist."""
    return sorted(path for path in folder.glob("[0-9][0-9]_*.ipynb") if path.is_file())


def _role(cell: nbformat.NotebookNode) -> str | None:
    return cell.get("metadata", {}).get(KEY, {}).get("navigation")


def title(notebook: nbformat.NotebookNode, path: Path) -> str:
    """The notebook's first ``# `` heading, else its file name."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and _role(cell) is None:
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def summary(notebook: nbformat.NotebookNode) -> str:
    """The first paragraph after the title heading (one sentence, by convention)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and _role(cell) is None and cell.source.startswith("# "):
            paragraphs = [part.strip() for part in cell.source.split("\n\n")[1:]]
            return next((part for part in paragraphs if part and part[0].isalpha()), "")
    return ""


def _label(path: Path, titles: dict[Path, str]) -> str:
    return f"{path.name[:2]} · {titles[path]}"


def links(index: int, paths: list[Path], titles: dict[Path, str]) -> str:
    """``← previous | Contents | next →`` for the notebook at ``index``."""
    parts = []
    if index > 0:
        parts.append(f"[← {_label(paths[index - 1], titles)}]({paths[index - 1].name})")
    if paths[index].name != CONTENTS_NOTEBOOK and any(p.name == CONTENTS_NOTEBOOK for p in paths):
        parts.append(f"[Contents]({CONTENTS_NOTEBOOK})")
    if index + 1 < len(paths):
        parts.append(f"[{_label(paths[index + 1], titles)} →]({paths[index + 1].name})")
    return " | ".join(parts)


def contents(paths: list[Path], titles: dict[Path, str], summaries: dict[Path, str]) -> str:
    lines = ["## Contents", ""]
    for path in paths:
        if path.name == CONTENTS_NOTEBOOK:
            continue
        text = f"- [{_label(path, titles)}]({path.name})"
        lines.append(f"{text}: {summaries[path]}" if summaries[path] else text)
    return "\n".join(lines)


def _nav_cell(role: str, source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata[KEY] = {"navigation": role}
    return cell


def expected(folder: Path = NOTEBOOKS) -> dict[Path, nbformat.NotebookNode]:
    """Every notebook as it should be, with its navigation cells written."""
    paths = notebook_paths(folder)
    notebooks = {path: nbformat.read(path, as_version=4) for path in paths}
    titles = {path: title(notebooks[path], path) for path in paths}
    summaries = {path: summary(notebooks[path]) for path in paths}
    for index, path in enumerate(paths):
        notebook = notebooks[path]
        nav = links(index, paths, titles)
        roles = [_role(cell) for cell in notebook.cells]
        if "top" not in roles:
            notebook.cells.insert(0, _nav_cell("top", nav))
        if "bottom" not in roles:
            notebook.cells.append(_nav_cell("bottom", nav))
        for cell in notebook.cells:
            role = _role(cell)
            if role in ("top", "bottom"):
                cell.source = nav
            elif role == "contents":
                cell.source = contents(paths, titles, summaries)
    return notebooks


def drifted(folder: Path = NOTEBOOKS) -> list[str]:
    """Names of the notebooks whose navigation differs from what it should be."""
    return [
        path.name
        for path, notebook in expected(folder).items()
        if nbformat.writes(notebook) != nbformat.writes(nbformat.read(path, as_version=4))
    ]


def rewrite(folder: Path = NOTEBOOKS) -> list[str]:
    """Write the navigation into every notebook that needs it; returns their names."""
    changed = drifted(folder)
    for path, notebook in expected(folder).items():
        if path.name in changed:
            nbformat.write(notebook, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report drift, exit 1 if any")
    parser.add_argument("--folder", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        names = drifted(args.folder)
        for name in names:
            print(f"{name}: navigation out of date; run tools/navigation.py", file=sys.stderr)
        return 1 if names else 0
    names = rewrite(args.folder)
    print(f"rewrote the navigation of {', '.join(names)}" if names else "navigation up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
