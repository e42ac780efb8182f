"""The set-up without make: README's plain commands, run in a fresh clone, and a package that
imports on any system (no /proc, no POSIX-only calls).

Many students have no `make` (Windows; a Mac without Apple's command-line tools), so README's
"Without make" section gives the same set-up as plain commands. The commands are read from
README itself, so this test fails as soon as README drifts from what works: from `make`'s own
test command, or between the macOS/Linux and the Windows spelling.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SECTION = "### Without make"


def fenced_blocks(readme: str) -> list[tuple[str, list[str]]]:
    """The (language, lines) of each fenced code block in README's "Without make" section."""
    start = readme.index(SECTION)
    end = readme.find("\n#", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    return [
        (language, body.strip().splitlines())
        for language, body in re.findall(r"```(\w*)\n(.*?)```", section, flags=re.DOTALL)
    ]


def plain_commands(readme: str) -> tuple[list[str], list[str], str]:
    """README's set-up lines (macOS/Linux), the same for Windows, and the test command."""
    blocks = fenced_blocks(readme)
    shells = [lines for language, lines in blocks if language == "sh"]
    windows = [lines for language, lines in blocks if language == "bat"]
    assert len(shells) == 2 and len(windows) == 1, f"expected sh, bat, sh blocks: {blocks}"
    (test_command,) = shells[1]
    return shells[0], windows[0], test_command


def windows_spelling(line: str) -> str:
    """A macOS/Linux line as README spells it for Windows: `py`, backslashes, Scripts."""
    line = re.sub(r"^python3 ", "py ", line)
    line = line.replace(".venv/bin/", ".venv/Scripts/")
    words = line.split(" ")
    # Only the program path changes separators: arguments such as a requirements file stay.
    words[0] = words[0].replace("/", "\\")
    return " ".join(words)


def test_the_windows_commands_are_the_same_commands() -> None:
    setup, windows, _ = plain_commands((PROJECT / "README.md").read_text(encoding="utf-8"))
    assert [windows_spelling(line) for line in setup] == windows
    assert any(r".venv\Scripts\python" in line for line in windows)


def test_the_plain_test_command_is_the_one_make_runs() -> None:
    """`make test` and README's plain test command run the same pytest invocation."""
    *_, test_command = plain_commands((PROJECT / "README.md").read_text(encoding="utf-8"))
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    recipe = re.search(r"^test: setup\n\t(.*)$", makefile, flags=re.MULTILINE)
    assert recipe, "Makefile's test target has moved: update this test"
    make_words = shlex.split(recipe.group(1).replace("$(PY)", ".venv/bin/python"))
    assert make_words[-1] == "$(PYTEST_ARGS)"
    assert shlex.split(test_command) == make_words[:-1]


# What Windows lacks (and /proc, which only Linux has). Every module of the package is
# imported with these gone, and an audit hook fails the import if it touches /proc.
WITHOUT_POSIX = textwrap.dedent(
    """
    import os, signal, sys
    import asyncio, subprocess, getpass, aio_pika, aiormq  # the standard library and deps,
    import matplotlib.figure                               # loaded while they are complete
    for name in ("killpg", "getpgid", "setsid", "getuid", "geteuid", "fork", "sysconf",
                 "getloadavg", "WNOHANG"):
        if hasattr(os, name):
            delattr(os, name)
    for name in ("SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGCHLD", "SIGALRM", "SIGPIPE"):
        if hasattr(signal, name):
            delattr(signal, name)
    for name in ("fcntl", "resource", "termios", "pwd", "grp"):
        sys.modules[name] = None  # import fails, as on Windows
    touched = []

    def audit(event, args):
        if event in ("open", "os.listdir", "os.scandir") and args and \\
                str(args[0]).startswith("/proc"):
            touched.append(str(args[0]))

    sys.addaudithook(audit)
    import importlib, pkgutil
    import fibrpc_helpers
    names = [m.name for m in pkgutil.walk_packages(fibrpc_helpers.__path__, "fibrpc_helpers.")]
    for name in names:
        importlib.import_module(name)
    assert not touched, f"importing read {touched}"
    print(len(names), "modules")
    """
)


def test_the_package_imports_without_proc_and_posix_only_calls() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX], capture_output=True, text=True, timeout=90,
        cwd=PROJECT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[0]) >= 20  # every module, the bench's included


def run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        line, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=480
    )


@pytest.mark.skipif(os.name != "posix", reason="runs README's macOS/Linux spelling")
@pytest.mark.timeout(900)  # a fresh venv: pip installs about 100 packages
def test_readme_plain_commands_work_in_a_fresh_clone(url: str, tmp_path: Path) -> None:
    """README's commands, line by line, in a clone of this repository's HEAD.

    The broker that runs the suite answers, so `broker ensure` only checks it. JupyterLab is
    not left running: its line runs with `--version` instead. The test command runs on one
    small file that talks to the broker, not the whole suite (which runs it already).
    """
    if not (PROJECT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "fibrpc"
    cloned = subprocess.run(
        ["git", "clone", "--quiet", str(PROJECT), str(clone)], capture_output=True, text=True,
        timeout=120,
    )
    assert cloned.returncode == 0, cloned.stderr
    setup, _, test_command = plain_commands((clone / "README.md").read_text(encoding="utf-8"))
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["AMQP_URL"] = url  # the suite's broker; a fresh clone has no .env of its own
    cwd = clone
    outputs: list[str] = []
    for line in setup:
        if line.startswith("cd "):
            cwd = cwd / line.removeprefix("cd ").strip()
            assert cwd.is_dir(), line
            continue
        if line.startswith("python3 "):  # this suite's Python, whatever its name here
            line = f"{shlex.quote(sys.executable)} {line.removeprefix('python3 ')}"
        if line.endswith(" jupyter lab"):
            line += " --version"
        done = run(line, cwd, env)
        assert done.returncode == 0, f"`{line}` failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    # `broker ensure` found the suite's broker: it started nothing of its own in the clone.
    assert any(
        out.startswith("RabbitMQ ") and "not started by this project" in out for out in outputs
    ), outputs
    assert (clone / ".venv").is_dir() and not (clone / ".broker" / "node.json").exists()

    python = clone / ".venv" / "bin" / "python"
    imported = run(f"{python} -c 'import fibrpc_helpers; print(fibrpc_helpers.__file__)'",
                   clone, env)
    assert imported.stdout.strip() == str(clone / "fibrpc_helpers" / "__init__.py"), imported

    # README's test command as written, its paths narrowed to one quick file.
    assert " tests notebooks " in test_command
    quick = test_command.replace(" tests notebooks ", " tests/test_broker.py ")
    tested = run(f"{quick} -q -p no:cacheprovider", clone, env)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert re.search(r"\d+ passed", tested.stdout), tested.stdout[-500:]
