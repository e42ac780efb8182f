# Two commands are the whole set-up: `make lab` and `make test`. Each one creates the venv,
# installs requirements.txt and makes sure a RabbitMQ broker answers (installing and starting
# one if needed), so a fresh machine needs nothing else.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra JupyterLab options, e.g. `make lab LAB_ARGS="--no-browser --ip 127.0.0.1 --port 8899"`.
LAB_ARGS ?=
# JupyterLab and RabbitMQ refuse to run as root unless told; students are not root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=
# `make test E2E=no` leaves out the browser tests (they run where the machine allows it).
E2E ?= yes
E2E_ARGS ?=

# Test runs get a namespace of their own, so they never touch the queues of a notebook you
# have open in JupyterLab at the same time (which uses your plain namespace).
test test-package test-notebooks: export FIBRPC_NAMESPACE := $(or $(FIBRPC_NAMESPACE),$(shell id -un)@$(shell hostname)).test-$(shell date +%s%N)

.PHONY: lab lab-student test test-latest test-package test-notebooks test-oldest bench setup venv broker \
	clean e2e

lab: setup
	cd notebooks && ../$(PY) -m jupyter lab $(ROOT_ARGS) $(LAB_ARGS)

test: setup
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg $(PYTEST_ARGS)
	@if [ "$(E2E)" = no ]; then echo "e2e: SKIPPED: E2E=no"; \
	else $(MAKE) --no-print-directory e2e; fi

test-package: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-notebooks: setup
	$(PY) -m pytest notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg $(PYTEST_ARGS)

# The classroom benchmark (under 2 minutes) and the tuning ladder against aio_pika.patterns.RPC
# (its first rows compare the reference with patterns.RPC, its last line names the fastest
# rung); CSVs and plots land in results/ (git-ignored).
bench: setup
	$(PY) -m fibrpc_helpers bench full
	$(PY) -m fibrpc_helpers bench ladder

# The same suite on today's stack: Python 3.14 and RabbitMQ 4.3 from Debian sid, in a root
# that debootstrap builds once (cached in ~/.cache/fibrpc/sid-root), with a RabbitMQ node of
# its own on ports of its own; needs root. `make test-latest SKIP_OK=yes` skips where it
# cannot run instead of failing.
test-latest:
	tools/latest-stack

# The same suite with every requirement at exactly its lower bound, in its own venv.
test-oldest:
	mkdir -p .venv-oldest
	tools/lower-bounds requirements.txt > .venv-oldest/constraints.txt
	PIP_CONSTRAINT=$(CURDIR)/.venv-oldest/constraints.txt $(MAKE) test VENV=.venv-oldest/venv

setup: venv broker

# The venv is rebuilt when PYTHON names another interpreter version, and reinstalled when
# requirements.txt or pyproject.toml change.
venv:
	@python="$$(tools/python-path $(PYTHON))" || exit 1; \
	want="$$($$python -c 'import sys; print(sys.version.split()[0])')" || exit 1; \
	have="$$(cat $(VENV)/.python-version 2>/dev/null)"; \
	if [ "$$want" != "$$have" ]; then \
		echo "creating $(VENV) with Python $$want"; \
		rm -rf $(VENV); \
		if ! $$python -m venv $(VENV) >/dev/null 2>&1; then \
			rm -rf $(VENV); \
			if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
				echo "installing python3-venv with apt-get (Debian's Python needs it)"; \
				apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null \
				|| exit 1; \
			fi; \
			$$python -m venv $(VENV) || { echo "error: cannot create a venv with $$python;" \
				"on Debian/Ubuntu: sudo apt-get install python3-venv" >&2; exit 1; }; \
		fi; \
		echo "$$want" > $(VENV)/.python-version; \
	fi
	@$(MAKE) --no-print-directory $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

broker: venv
	$(PY) -m fibrpc_helpers broker ensure

# JupyterLab in a real headless Chromium: notebooks run with Run All from the menu, checked in
# the rendered page, screenshots in results/e2e/. Installs Debian's chromium when root (skips,
# saying why, where it cannot) and Playwright from PyPI; never downloads a browser build.
e2e: setup
	@sh tests/e2e/ensure_browser.sh; status=$$?; \
	if [ $$status = 3 ]; then exit 0; elif [ $$status != 0 ]; then exit $$status; fi; \
	$(MAKE) --no-print-directory $(VENV)/.e2e-installed && \
	FIBRPC_E2E=1 $(PY) -m pytest tests/e2e $(E2E_ARGS)

$(VENV)/.e2e-installed: requirements-e2e.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-e2e.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache

# The student edition of the series: every notebook with its exercises' solutions replaced by
# nbgrader's stubs and its outputs cleared (checks kept), in student/ (git-ignored); the
# teacher's notebooks are only read. It prints the command that opens it in JupyterLab.
student: venv
	$(PY) -m fibrpc_helpers.exercises.edition notebooks student $(if $(filter yes,$(FORCE)),--force,)

# JupyterLab on the student edition: written the first time, never over a student's answers
# (`make student FORCE=yes` writes it again).
lab-student: setup
	@[ -d student ] || $(PY) -m fibrpc_helpers.exercises.edition notebooks student
	cd student && ../$(PY) -m jupyter lab $(ROOT_ARGS) $(LAB_ARGS)

# Grade a class: `make grade SUBMISSIONS=dir` runs every submitted notebook in a process of its
# own, as a broker user limited to a namespace of its own (made and deleted with rabbitmqctl, or
# the class broker's HTTP API: GRADE_ARGS="--admin-api http://admin:pw@host:15672"), and writes
# grades.csv: checks passed per student and per exercise.
SUBMISSIONS ?=
GRADE_ARGS ?=
grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder" >&2; exit 2; }
	$(PY) -m fibrpc_helpers.exercises.grade $(SUBMISSIONS) $(GRADE_ARGS)
