"""`make test-latest` leaves nothing behind: no process and no mount of its root, whether the
command inside passed, failed, or the run was killed and the next one swept up after it.

A stand-in root keeps this cheap enough for every `make test`: a folder holding bash, sleep and
the libraries they load, entered the way tools/latest-stack enters the Debian sid root (new PID
and mount namespaces, /proc, /dev and /tmp mounted inside, chroot).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "tools" / "latest-stack"

pytestmark = [
    pytest.mark.skipif(
        os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0
        or shutil.which("unshare") is None or shutil.which("ldd") is None,
        reason="entering a root needs Linux, root, unshare and ldd (make test-latest needs "
        "them too)",
    ),
    pytest.mark.skipif(
        os.environ.get("FIBRPC_INSIDE_LATEST_ROOT") == "1",
        reason="already inside make test-latest's root: its own clean-up is checked from outside",
    ),
]


def _copy_with_libraries(program: str, root: Path) -> None:
    """Copy ``program`` and the shared libraries ``ldd`` lists into ``root``, same paths."""
    path = Path(shutil.which(program) or program).resolve()
    listed = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    libraries = [part for line in listed.splitlines() for part in line.split()
                 if part.startswith("/")]
    for source in [str(path), *libraries]:
        target = root / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (root / "bin").mkdir(exist_ok=True)
    link = root / "bin" / program
    if not link.exists():
        link.symlink_to(path)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """FIBRPC_LATEST_CACHE for the script, holding a stand-in ``sid-root``."""
    root = tmp_path / "sid-root"
    for folder in ("proc", "dev", "tmp", "etc"):
        (root / folder).mkdir(parents=True)
    for program in ("bash", "sleep"):
        _copy_with_libraries(program, root)
    return tmp_path


def _processes_in(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(root):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _mounts_under(root: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point == str(root) or point.startswith(f"{root}/")]


def _script(cache: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", str(SCRIPT), *args], env={**os.environ, "FIBRPC_LATEST_CACHE": str(cache)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,  # type: ignore
    )


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_finished_run_leaves_no_process_and_no_mount(cache, exit_code):
    inside = f"sleep 300 & sleep 300 & echo inside; exit {exit_code}"
    done = _script(cache, "--run-in-root", "bash", "-c", inside)
    output, _ = done.communicate(timeout=60)
    assert done.returncode == exit_code, output
    assert "inside" in output
    assert "clean-up: no process and no mount of the root is left" in output
    root = cache / "sid-root"
    assert _processes_in(root) == [] and _mounts_under(root) == []


def test_a_killed_run_is_swept_up_by_the_next(cache):
    root = cache / "sid-root"
    run = _script(cache, "--run-in-root", "bash", "-c", "sleep 300 & echo inside; sleep 300")
    try:
        assert run.stdout is not None and run.stdout.readline() == "inside\n"
        assert _processes_in(root), "the command inside is not running"
        run.send_signal(signal.SIGKILL)  # the script only, as a timeout might: no trap runs
        run.wait(timeout=10)
        assert _processes_in(root), "killing the script alone ended the root's processes"
        rerun = _script(cache, "--check-clean")
        output, _ = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, output
        assert "stopping" in output and "process(es) an earlier run left" in output
        assert "clean-up: no process and no mount of the root is left" in output
        assert _processes_in(root) == [] and _mounts_under(root) == []
    finally:
        for pid in _processes_in(root):
            os.kill(pid, signal.SIGKILL)


def test_a_terminated_run_ends_at_once_and_leaves_nothing(cache):
    """A CI timeout sends TERM: the run stops without waiting for what runs inside."""
    root = cache / "sid-root"
    run = _script(cache, "--run-in-root", "bash", "-c", "sleep 300 & echo inside; sleep 300")
    try:
        assert run.stdout is not None and run.stdout.readline() == "inside\n"
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=20)  # the command inside would sleep 300 s
        assert run.returncode == 143, output
        assert _processes_in(root) == [] and _mounts_under(root) == []
    finally:
        for pid in _processes_in(root):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_builds_mounts_are_swept_too(cache):
    """debootstrap mounts /proc and /sys in the root it is building (sid-root.partial)."""
    partial = cache / "sid-root.partial" / "proc"
    partial.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(partial)], check=True)
    try:
        rerun = _script(cache, "--check-clean")
        output, _ = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, output
        assert "unmounting 1 mount(s)" in output
        assert _mounts_under(cache / "sid-root.partial") == []
    finally:
        subprocess.run(["umount", "-l", str(partial)], capture_output=True)
