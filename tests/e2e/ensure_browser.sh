#!/bin/sh
# Make sure a Chromium is installed for `make e2e`.
# Exit 0: there is one (installed now with apt-get if we are root on Debian/Ubuntu).
# Exit 3: this machine cannot have one from here; the reason is printed, `make e2e` skips.
# Exit 1: the install was attempted and failed (a real error, e.g. in CI).
set -u
found() {
    for name in ${CHROMIUM:-} chromium chromium-browser google-chrome google-chrome-stable; do
        command -v "$name" >/dev/null 2>&1 && { echo "e2e: browser $(command -v "$name")"; return 0; }
    done
    return 1
}
found && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "e2e: SKIPPED: no Chromium here, and installing one needs apt-get as root."
    echo "     To run the browser tests: sudo apt-get install chromium (or install Chromium"
    echo "     or Chrome your way and set CHROMIUM=/path/to/it), then run 'make e2e'."
    exit 3
fi
echo "e2e: installing Debian's chromium with apt-get ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null || {
    echo "e2e: apt-get install chromium failed" >&2; exit 1; }
found || { echo "e2e: chromium installed but not on PATH" >&2; exit 1; }
