"""``python -m fibrpc_helpers.exercises.grade SUBMISSIONS [--csv FILE]``: grade a class.

SUBMISSIONS holds the students' notebooks: ``alice.ipynb`` (one notebook each) or
``alice/02_callback_queue.ipynb`` (a folder each). Each notebook runs in a process of its
own (its kernel with it) in a scratch folder, with a time limit, as a broker user made for
the run and limited to a namespace of its own (:mod:`.broker_users`), deleted afterwards
with whatever queues its namespace left. A check cell (nbgrader's metadata: ``grade``
true, a ``grade_id``) counts as passed when it ran without an error; before the run, each
check cell gets back the teacher's source of the same ``grade_id`` (as nbgrader's autograde
does), so an edited check counts for nothing. A submission that hangs, crashes its kernel
or deletes queues it does not own (the broker refuses it) loses its own marks only. The CSV
has a row per student: each check passed (1) or not (0), the total, and a note (timed out,
kernel died, or why grading that student failed).

The broker user guards against accidents, not against a hostile submission: its kernel
runs as the teacher's operating-system user and could read the teacher's files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..urls import amqp_url, mask_url
from .broker_users import Admin, admin_for, new_password, student_url
from .edition import DEFAULT_SOURCE

DEFAULT_TIMEOUT = 300.0
CELL_TIMEOUT = 120


@dataclass
class Outcome:
    """What one notebook's run gave: each check's grade_id and whether it passed."""

    checks: dict[str, bool] = field(default_factory=dict)
    note: str = ""


def checks_of(notebook: dict) -> dict[str, bool]:
    """Each graded cell's grade_id: True when it ran and raised nothing."""
    found = {}
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("grade") and meta.get("grade_id"):
            ran = cell.get("execution_count") is not None
            failed = any(output.get("output_type") == "error" for output in cell["outputs"])
            found[meta["grade_id"]] = ran and not failed
    return found


def teacher_checks(folder: Path) -> dict[str, str]:
    """grade_id -> the source of that check cell in the teacher's notebooks in ``folder``."""
    found = {}
    for path in sorted(folder.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.get("cell_type") == "code" and meta.get("grade") and meta.get("grade_id"):
                source = cell["source"]
                found[meta["grade_id"]] = source if isinstance(source, str) else "".join(source)
    return found


def restore_checks(notebook: dict, checks: dict[str, str]) -> dict:
    """``notebook`` with every check cell's source put back to the teacher's."""
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and grade_id in checks:
            cell["source"] = checks[grade_id]
    return notebook


def run_one(notebook_path: Path, result_path: Path) -> None:
    """In the child: execute the notebook, write its checks (and a note) as JSON."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    notebook = nbformat.read(notebook_path, as_version=4)
    note = ""
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, allow_errors=True,
                            kernel_name="python3",
                            resources={"metadata": {"path": str(notebook_path.parent)}})
    try:
        client.execute()
    except DeadKernelError:
        note = "its kernel died"
    except Exception as error:  # a cell over CELL_TIMEOUT, a kernel that would not start
        note = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    result_path.write_text(json.dumps({"checks": checks_of(notebook), "note": note}))


def run_submission(notebook: Path, url: str, namespace: str, timeout: float,
                   checks: dict[str, str] | None = None) -> Outcome:
    """Run one notebook, its check cells restored from ``checks`` (grade_id -> source), in a
    process of its own; kill its process group at ``timeout``."""
    with (tempfile.TemporaryDirectory(prefix="fibrpc-grade-") as scratch,
          tempfile.TemporaryDirectory(prefix="fibrpc-grade-result-") as results):
        copy = Path(scratch) / notebook.name
        copy.write_text(json.dumps(restore_checks(json.loads(notebook.read_text()),
                                                  checks or {})))
        result = Path(results) / "result.json"  # outside the kernel's working folder
        env = {**os.environ, "AMQP_URL": url, "FIBRPC_NAMESPACE": namespace}
        child = subprocess.Popen(
            [sys.executable, "-m", "fibrpc_helpers.exercises.grade", "--run-one", str(copy),
             str(result)], cwd=scratch, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the child (its kernel then ends itself)
            child.wait()
            return Outcome(_none_passed(notebook), f"timed out after {timeout:g} s")
        if not result.exists():
            why = f"its run ended without a result (exit code {child.returncode})"
            return Outcome(_none_passed(notebook), why)
        data = json.loads(result.read_text())
        return Outcome(data["checks"], data["note"])


def _none_passed(path: Path) -> dict[str, bool]:
    """Every check of the notebook at ``path``, failed (its run gave no result)."""
    return {check: False for check in checks_of(json.loads(path.read_text()))}


def submissions(folder: Path) -> dict[str, list[Path]]:
    """Student name -> their notebooks (a notebook each, or a folder each)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        relative = path.relative_to(folder)
        student = relative.parts[0] if len(relative.parts) > 1 else path.stem
        found.setdefault(student, []).append(path)
    return found


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:40]


def grade_student(admin: Admin, teacher_url: str, student: str, notebooks: list[Path],
                  timeout: float, checks: dict[str, str] | None = None) -> Outcome:
    """All of one student's notebooks, as a user of their own, removed afterwards."""
    run = uuid.uuid4().hex[:6]
    user, namespace = f"grade-{_slug(student)}-{run}", f"grade-{_slug(student)}-{run}"
    password = new_password()
    admin.add_user(user, password, namespace)
    outcome = Outcome()
    try:
        for notebook in notebooks:
            one = run_submission(notebook, student_url(teacher_url, user, password), namespace,
                                 timeout, checks)
            outcome.checks.update(one.checks)
            if one.note:
                note = f"{notebook.name}: {one.note}"
                outcome.note = f"{outcome.note}; {note}" if outcome.note else note
    finally:
        admin.delete_user(user)  # its connections close with it
        _delete_namespace(teacher_url, admin, namespace)
    return outcome


def _delete_namespace(teacher_url: str, admin: Admin, namespace: str) -> None:
    import asyncio

    from ..lab.broker import delete_queues

    left = [q for q in admin.queues() if q.startswith(namespace + ".")]
    asyncio.run(delete_queues(teacher_url, left))


def write_csv(path: Path, grades: dict[str, Outcome]) -> None:
    checks = sorted({check for outcome in grades.values() for check in outcome.checks})
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["student", *checks, "passed", "note"])
        for student, outcome in grades.items():
            marks = [int(outcome.checks.get(check, False)) for check in checks]
            writer.writerow([student, *marks, sum(marks), outcome.note])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("submissions", type=Path, nargs="?")
    parser.add_argument("--csv", type=Path, default=Path("grades.csv"))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds one notebook may run (default %(default)s)")
    parser.add_argument("--url", help="the class broker, as the teacher (default: AMQP_URL)")
    parser.add_argument("--admin-api", help="the broker's HTTP API, http://admin:pw@host:15672 "
                        "(default: rabbitmqctl, for the node `broker ensure` started here)")
    parser.add_argument("--teacher", type=Path, default=DEFAULT_SOURCE,
                        help="the teacher's notebooks, whose check cells are run (default: "
                        "notebooks/)")
    parser.add_argument("--run-one", nargs=2, type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.run_one:
        run_one(*options.run_one)
        return 0
    if options.submissions is None or not options.submissions.is_dir():
        parser.error("give the folder of submitted notebooks")
    teacher_url = amqp_url(options.url)
    admin = admin_for(teacher_url, options.admin_api)
    found = submissions(options.submissions)
    checks = teacher_checks(options.teacher)
    grades = {}
    for student, notebooks in found.items():
        try:
            outcome = grade_student(admin, teacher_url, student, notebooks, options.timeout,
                                    checks)
        except Exception as error:  # this student's user or queues: the others still count
            outcome = Outcome(note=f"grading failed: {type(error).__name__}: {error}")
        grades[student] = outcome
        passed = sum(outcome.checks.values())
        print(f"{student}: {passed} of {len(outcome.checks)} checks passed"
              + (f" ({outcome.note})" if outcome.note else ""))
    write_csv(options.csv, grades)
    print(f"wrote {options.csv} ({len(grades)} students, broker {mask_url(teacher_url)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
