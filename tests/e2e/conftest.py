"""Browser tests run only under `make e2e` (it installs Chromium and Playwright first).

A plain `pytest tests` does not collect this folder: it would need a browser that a
student's machine may not have. `make e2e` sets FIBRPC_E2E=1.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("FIBRPC_E2E") == "1" else ["*.py"]
