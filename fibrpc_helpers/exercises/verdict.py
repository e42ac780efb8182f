"""How a check ends: one line that says what was verified, or one line that names the mistake.

A failed check raises :class:`ExerciseFailed`, an ``AssertionError``, so that a grader (and
nbgrader's autograder) counts the cell as failed; IPython shows it as the single line of
``_render_traceback_`` instead of a traceback into the check's own code, which would only
distract from the student's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

PASSED = "✓"
FAILED = "✗"


class ExerciseFailed(AssertionError):
    """The student's code did something wrong; the message says what, and what to revisit."""

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: show this failure as one line, not as a traceback."""
        return [f"{FAILED} {self}"]


class Passed(str):
    """The line of success a check returns, once printed.

    A check cell ends with ``await check_...(...)``, so IPython would show the returned line
    a second time, as the cell's value; this str shows nothing more.
    """

    def _ipython_display_(self) -> None:
        """IPython's hook: the check printed the line already."""


def passed(line: str) -> str:
    """Print (and return) the line a check prints when the student's code did it right."""
    text = Passed(f"{PASSED} {line}")
    print(text)
    return text


def failure(mistake: str, idea: str, notebook: str) -> ExerciseFailed:
    """``mistake: idea, see notebook``: what went wrong, what to do, where it is taught."""
    return ExerciseFailed(f"{mistake}: {idea}, see {notebook}")


def described(error: BaseException) -> str:
    """An exception as a student reads it: ``KeyError: 'stranger'``."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def student(
    awaitable: Awaitable[T], *, what: str, seconds: float, hang: str, stub: str, notebook: str
) -> T:
    """Await the student's ``awaitable`` with a deadline of its own.

    ``what`` names the student's code (``OneQueueClient.call(3)``); ``hang`` is the idea
    when it does not finish in time, ``stub`` the idea when it raises NotImplementedError
    (nbgrader's stub). Any other exception goes on to the check, which knows what it means.
    A student's ``TimeoutError`` (their own ``wait_for``) is theirs, not our deadline's.
    """
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await awaitable
    except NotImplementedError:
        raise failure(f"{what} is not written yet (it raises NotImplementedError)", stub,
                      notebook) from None
    except TimeoutError:
        if deadline.expired():
            raise failure(f"{what} did not finish within {seconds:g} s", hang, notebook) from None
        raise
