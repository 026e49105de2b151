# Two commands matter: `make run` (embedded defaults, no services needed) and `make test`
# (the whole suite against the machine's real PostgreSQL and Redis); `make serve` runs the
# production layout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export DATABASE_URL_TEST ?= postgres://postgres@127.0.0.1:5432/askpro
export REDIS_URL_TEST ?= redis://127.0.0.1:6379/0
# `make test` runs the suite on every core (pytest-xdist); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto

.PHONY: install install-dev run serve test lint check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-installs only when the dependency files change (stamp files), so repeated runs are fast.
.make-install: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

.make-install-dev: pyproject.toml constraints.txt .make-install
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: .make-install

install-dev: .make-install-dev

run: install
	@mkdir -p var && printf '%s\n' '# Written by make run; read by manage.py only (docs/configuration.md).' "DEBUG=$${DEBUG:-1}" > var/dev.env
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py setup_periodic_tasks
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py demo_access
	@echo "Serving on http://127.0.0.1:$(PORT)/  (admin: /admin/, API docs: /api/docs/)"
	@if [ "$${SANDBOX:-0}" = "1" ]; then echo "SANDBOX=1: upstream sandboxes start too (manage.py run_sandbox)"; fi
	PY=$(BIN)/python PORT=$(PORT) ./scripts/run_dev.sh

# The production process layout on this machine (Procfile through honcho, PostgreSQL and Redis,
# DEBUG off; docs/deployment.md). `scripts/serve.sh manage ...` runs manage.py against it.
serve: install
	BIN=$(BIN) PORT=$(PORT) ./scripts/serve.sh

test: install-dev
	DATABASE_URL=$${DATABASE_URL:-$(DATABASE_URL_TEST)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL_TEST)} ./scripts/ensure_services.sh
	./scripts/ensure_browser.sh
	./scripts/ensure_conformance.sh
	DATABASE_URL=$${DATABASE_URL:-$(DATABASE_URL_TEST)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL_TEST)} $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist load $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/python manage.py check
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

bench: install-dev
	DATABASE_URL=$${DATABASE_URL:-$(DATABASE_URL_TEST)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL_TEST)} ./scripts/ensure_services.sh
	DATABASE_URL=$${DATABASE_URL:-$(DATABASE_URL_TEST)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL_TEST)} $(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .make-install .make-install-dev var
