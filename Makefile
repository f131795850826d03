# Karimasu's verbs: run, test, lint, bench. Each sets up what it needs first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The policy scanner (checkov) lives in its own virtualenv: its pins clash with the app's.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp
CHROMIUM := /usr/bin/chromium
KUBECTL := kubectl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv tools frontend run test test-fast lint format bench messages lock chromium kubectl java clean \
	k8s-policy k8s-demo-secrets

help:
	@echo "make run      set up and start the demo on http://127.0.0.1:8000"
	@echo "make test     set up and run the whole test suite"
	@echo "make lint     ruff (complexity too), manage.py check, makemigrations --check,"
	@echo "              mypy on every package against mypy-burndown.txt (may only shrink),"
	@echo "              the import-linter layer contracts, k8s policy"
	@echo "make k8s-policy  render every k8s/ kustomization and scan it with checkov"
	@echo "make k8s-demo-secrets  write k8s/overlays/demo/secrets.env (random passwords)"
	@echo "make bench    run the benchmarks (results: benchmarks/RESULTS.md)"
	@echo "make messages refresh and compile the Japanese translations"
	@echo "make frontend rebuild the vendored front-end bundles (needs npm; run/test use the committed ones)"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,notebook]'
	@touch $(STAMP)

# The scheduling core's hot modules compiled with mypyc (scripts/build_core.py): again
# whenever a core source changes; without a C compiler the core runs as pure Python.
CORE_STAMP := var/.core-build-stamp
$(CORE_STAMP): $(STAMP) $(wildcard scheduler/core/*.py) scripts/build_core.py
	$(BIN)/python scripts/build_core.py
	@mkdir -p var && touch $(CORE_STAMP)

venv: $(STAMP) $(CORE_STAMP)

$(TOOLS_STAMP): requirements-tools.lock
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.lock
	@touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

# The demo pipeline's container steps run on the emulator as real processes that reach the
# datasets through the named mount "datasets" (docs/pipelines.md, "In the demo").
DEMO_ENV := PIPELINES_DATASETS_MOUNT=datasets KARIMASU_JOB_ANNOTATION_PREFIXES=emulator.karimasu.io \
  KARIMASU_EMULATOR_VOLUMES='{"karimasu-datasets": "$(abspath var/datasets)"}'

# The front-end packages (frontend/package.json, exact versions in package-lock.json) are
# bundled by esbuild into frontend/static/vendor/, which is committed: run and test need no npm.
frontend:
	cd frontend && npm ci --no-audit --no-fund && node build.js

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py demo_warehouse --dataset tpch --scale 0.1
	$(DEMO_ENV) $(BIN)/python manage.py demo_pipeline
	@echo
	@echo "  Karimasu demo: http://127.0.0.1:8000   (API docs: http://127.0.0.1:8000/api/docs/)"
	@echo "  Ctrl-C stops everything."
	@echo
	@rm -f var/kubeconfig  # the emulator writes a fresh one with its port
	PATH="$(abspath $(BIN)):$$PATH" KUBECONFIG="$(abspath var/kubeconfig)" $(DEMO_ENV) \
	  $(BIN)/honcho --procfile Procfile start

# Chromium for the browser tests, and a CJK font so Japanese pages (and screenshots) render.
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
chromium:
	@test -x $(CHROMIUM) && test -e $(CJK_FONT) || { \
	  echo "Installing Debian's chromium and fonts-noto-cjk for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    chromium fonts-noto-cjk; }

# The emulator's conformance probes run kubectl itself (they fail without it).
kubectl:
	@command -v $(KUBECTL) >/dev/null || { echo "Installing Debian's kubernetes-client (kubectl) for the emulator probes"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq kubernetes-client; }

# Java for the local Spark Connect server of the Spark engine's tests and demo (Spark 4 needs 17+).
java:
	@command -v java >/dev/null || { echo "Installing Debian's openjdk-17-jre-headless for the Spark tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }

test: venv chromium kubectl java
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not browser and not worker and not spark"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python scripts/mypy_burndown.py
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory k8s-policy

# Every kustomization rendered (throwaway secrets), then checkov over the objects: any
# failed check fails; each skip is a checkov.io/skipN annotation with its reason.
k8s-policy: venv tools
	rm -rf var/k8s-rendered
	$(BIN)/python scripts/k8s.py render var/k8s-rendered
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework kubernetes \
	  --directory var/k8s-rendered

k8s-demo-secrets: venv
	$(BIN)/python scripts/k8s.py demo-secrets

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
	/tmp/karimasu-lock/bin/pip install --quiet -e '.[dev,notebook]'
	/tmp/karimasu-lock/bin/pip freeze --exclude-editable | grep -v '^karimasu' > requirements.lock
	rm -rf /tmp/karimasu-tools-lock && $(PYTHON) -m venv /tmp/karimasu-tools-lock
	/tmp/karimasu-tools-lock/bin/pip install --quiet --upgrade pip
	/tmp/karimasu-tools-lock/bin/pip install --quiet "checkov==$$(sed -n 's/^checkov==//p' requirements-tools.lock)"
	{ sed -n '/^#/p' requirements-tools.lock; /tmp/karimasu-tools-lock/bin/pip freeze; } > requirements-tools.lock.new
	mv requirements-tools.lock.new requirements-tools.lock

clean:
	rm -rf $(VENV) $(TOOLS) var scheduler/core/_compiled
