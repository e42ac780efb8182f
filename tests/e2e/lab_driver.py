"""Drive a real JupyterLab in a real browser, as a student does: open a notebook, Run All.

nbval proves that a notebook's cells run in a kernel; this proves that they run in the
application students use: JupyterLab's Run All queues every cell at once, continues past a
cell tagged ``raises-exception`` and stops at any other error, renders the outputs, and a
notebook that blocks the kernel's event loop or needs a browser-side widget shows it here.

The browser is the machine's Chromium (Debian's package), driven by Playwright through
``executable_path``: no browser is ever downloaded. JupyterLab serves a COPY of the notebooks
from a temporary folder, so what the browser runs (and autosaves) never touches the committed
files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright
from ports import free_block

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# This machine's network is closed and Chromium phones home at start: keep it quiet and local.
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root; harmless otherwise for a throwaway local profile
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

# JupyterLab user settings for the run: every cell in the DOM (no virtual scrolling, so the
# page can be checked and photographed whole), the notebook's kernel started without asking,
# and no news or update checks over the network.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "autoStartDefaultKernel": True,
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

STDERR = "application/vnd.jupyter.stderr"  # how JupyterLab renders tracebacks and stderr


def find_browser() -> str | None:
    """The Chromium to drive: ``$CHROMIUM``, else the first of :data:`BROWSERS` on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def launch(playwright: Playwright, executable: str) -> Browser:
    """Headless Chromium, with a fresh profile that Playwright creates and deletes."""
    return playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=60_000
    )


@dataclass
class Lab:
    """A running JupyterLab server: where it is and the folder it serves."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut every kernel down, as closing the notebook with "Shut Down Kernel" does: the
        notebook's worker processes stop with it, before the next notebook runs."""
        for kernel in self.api("kernels"):  # type: ignore[union-attr]
            self.api(f"kernels/{kernel['id']}", method="DELETE")

    def notebook_url(self, name: str) -> str:
        # `reset` starts from an empty workspace: no tabs restored from an earlier session
        return f"{self.url}lab/tree/{name}?reset&token={self.token}"


@contextmanager
def jupyter_lab(notebooks: Path, workdir: Path, timeout: float = 90) -> Iterator[Lab]:
    """Start JupyterLab headless on a free localhost port with a token, serving a copy of
    ``notebooks``; stop it (and its kernels) on exit."""
    root = workdir / "notebooks"
    shutil.copytree(notebooks, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = workdir / "user-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_block(1), secrets.token_hex(16)  # below the ephemeral range
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workdir}/ws",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        # the kernels' queues in a namespace of their own: a notebook open elsewhere on this
        # machine (a student's, or nbval running the same notebook) never shares them
        "FIBRPC_NAMESPACE": f"e2e-{secrets.token_hex(4)}",
    }
    log = workdir / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                   env=env, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root, log, process)
    try:
        _wait_until_up(lab, timeout)
        yield lab
    finally:
        _stop(process)


def _wait_until_up(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early:\n{lab.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{lab.url}api/status?token={lab.token}", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer in {timeout} s:\n{lab.log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class CellResult:
    """One code cell as the page shows it after Run All."""

    index: int  # position among ALL cells of the notebook (markdown included)
    prompt: str  # "[3]:" once run; "[*]:" queued or running; "[ ]:" never run
    output_text: str
    error_text: str  # what rendered as a traceback or stderr, "" if nothing
    images: int  # pictures rendered in the output (plots, sequence diagrams)

    @property
    def ran(self) -> bool:
        return re.fullmatch(r"\[\d+\]:", self.prompt) is not None


def open_notebook(page: Page, lab: Lab, name: str, timeout: float = 60) -> None:
    """Open the notebook in JupyterLab and wait until its kernel has started and is idle."""
    page.goto(lab.notebook_url(name), timeout=timeout * 1000)
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(
        timeout=timeout * 1000
    )
    wait_for_idle_kernel(page, timeout)


# JupyterLab's own kernel status, as the status bar shows it: "Python 3 (ipykernel) | Idle".
# (The toolbar's execution indicator also reads idle before any kernel exists.)
_KERNEL_IDLE = r"""() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some(item => /\(ipykernel\) \| Idle$/.test(item.textContent.trim()))"""


def wait_for_idle_kernel(page: Page, timeout: float) -> None:
    page.wait_for_function(_KERNEL_IDLE, timeout=timeout * 1000, polling=200)


def menu(page: Page, top: str, item: str) -> None:
    """Click a menu bar entry, then one of its items, as a person does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run_all(page: Page, timeout: float) -> None:
    """View > Expand All Code, Edit > Clear Outputs of All Cells, Run > Run All Cells, then
    wait until the run ended: nothing queued ([*]) any more and the kernel idle.

    A cell whose code is hidden (a "Try it" solution) shows no prompt, so the code is expanded
    first. Clearing makes every prompt [ ], so a numbered prompt can only come from this run.
    """
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    menu(page, "View", "Expand All Code")
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .every(p => p.textContent.trim() === '[ ]:')""",
        timeout=10_000,
    )
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(  # started: some prompt left [ ]
        """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .some(p => p.textContent.trim() !== '[ ]:')""",
        timeout=10_000,
    )
    page.wait_for_function(
        f"""() => {{
            const queued = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .some(p => p.textContent.includes('*'));
            return !queued && ({_KERNEL_IDLE})();
        }}""",
        timeout=timeout * 1000,
        polling=250,
    )


def code_cells(page: Page) -> list[CellResult]:
    """Every code cell of the visible notebook: its prompt, its output text, its errors."""
    rows = page.evaluate(
        """(stderr) => {
            const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell')];
            return cells.map((cell, index) => {
                if (!cell.classList.contains('jp-CodeCell')) return null;
                const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
                const errors = outputs.filter(o => o.getAttribute('data-mime-type') === stderr);
                return {
                    index,
                    prompt: cell.querySelector('.jp-InputPrompt').textContent.trim(),
                    output_text: outputs.map(o => o.innerText).join('\\n'),
                    error_text: errors.map(o => o.innerText).join('\\n'),
                    images: cell.querySelectorAll('.jp-OutputArea-output img').length,
                };
            }).filter(row => row !== null);
        }""",
        STDERR,
    )
    return [CellResult(**row) for row in rows]


def broken_diagrams(page: Page) -> list[str]:
    """The Mermaid diagrams in markdown that JupyterLab could not draw, with mermaid's error
    (JupyterLab then shows the diagram's source in a warning box instead of the picture)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.jp-RenderedMermaid.jp-mod-warning')]
            .map(box => box.querySelector('code').textContent.split('\\n')[0] + ': '
                 + [...box.querySelectorAll('details > pre')].map(e => e.textContent).join(''))"""
    )


def screenshot(page: Page, path: Path) -> None:
    """The whole notebook in one picture: the file browser folded away (Ctrl+B) and the
    viewport made as tall as the notebook's scrolled content."""
    if page.locator("#jp-left-stack:not(.lm-mod-hidden)").count():
        page.keyboard.press("Control+b")
    height = page.evaluate(
        """() => {
            const scroller = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
                || document.querySelector('.jp-NotebookPanel .jp-Notebook');
            return scroller.scrollHeight + (window.innerHeight - scroller.clientHeight);
        }"""
    )
    page.set_viewport_size({"width": 1280, "height": max(800, min(int(height) + 40, 16000))})
    page.evaluate(
        """() => document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer,'
            + ' .jp-NotebookPanel .jp-Notebook').forEach(element => { element.scrollTop = 0; })"""
    )
    page.wait_for_timeout(300)  # one layout pass at the new size (nothing to wait on)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
