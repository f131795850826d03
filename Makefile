# Karimasu's verbs: run, test, lint, bench. Each sets up what it needs first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv run test test-fast lint format bench messages lock chromium clean

help:
	@echo "make run      set up and start the demo on http://127.0.0.1:8000"
	@echo "make test     set up and run the whole test suite"
	@echo "make lint     ruff, manage.py check, makemigrations --check, mypy"
	@echo "make bench    run the benchmarks (results: benchmarks/RESULTS.md)"
	@echo "make messages refresh and compile the Japanese translations"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py gate demo-warehouse --dataset tpch --scale 0.1
	@echo
	@echo "  Karimasu demo: http://127.0.0.1:8000   (API docs: http://127.0.0.1:8000/api/docs/)"
	@echo "  Ctrl-C stops everything."
	@echo
	@rm -f var/kubeconfig  # the emulator writes a fresh one with its port
	PATH="$(abspath $(BIN)):$$PATH" KUBECONFIG="$(abspath var/kubeconfig)" \
	  $(BIN)/honcho --procfile Procfile start

chromium:
	@test -x $(CHROMIUM) || { echo "Installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

test: venv chromium
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not browser and not worker"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy scheduler/core querygate/analysis karimasu_client

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

PHILLY := ../shared/traces/philly.csv

bench: venv
	$(BIN)/python -m benchmarks
	$(BIN)/python manage.py sched bench --queued 10000 --nodes 200 --gpus-per-node 8 --reservations 1000 --json
	@for policy in fifo fifo-backfill default; do \
	  echo "sched simulate philly 103959,ee9e8c 8x8 $$policy:"; \
	  $(BIN)/python manage.py sched simulate --trace $(PHILLY) --trace-format philly \
	    --clusters 103959,ee9e8c --nodes 8 --gpus-per-node 8 --policy $$policy --limit 1500 --json; \
	done

messages: venv
	$(BIN)/python manage.py makemessages -l ja --ignore=.venv --ignore=var
	$(BIN)/python scripts/translate_ja.py  # fills from scripts/ja.json; lists what is missing
	$(BIN)/python manage.py compilemessages --ignore=.venv

# Re-pin every transitive dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/karimasu-lock && $(PYTHON) -m venv /tmp/karimasu-lock
	/tmp/karimasu-lock/bin/pip install --quiet --upgrade pip
	/tmp/karimasu-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/karimasu-lock/bin/pip freeze --exclude-editable | grep -v '^karimasu' > requirements.lock

clean:
	rm -rf $(VENV) var
