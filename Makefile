# The commands README.rst documents. Everything the tests need is installed and started here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A second environment runs the unit suite on oauthlib 3.3 (the main one resolves to oauthlib 4).
VENV_OAUTHLIB3 ?= .venv-oauthlib3

.PHONY: demo play serve-prod test lint docs unit unit-oauthlib3 system integration clean bench bench-smoke soak soak-smoke

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $@

$(VENV_OAUTHLIB3)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV_OAUTHLIB3)
	$(VENV_OAUTHLIB3)/bin/pip install --quiet --upgrade pip
	$(VENV_OAUTHLIB3)/bin/pip install --quiet -e '.[test]' 'oauthlib>=3.3,<4'
	touch $@

## demo: poll, ping and push end to end on the embedded default (SQLite, in-process tasks)
demo: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py ciba_demo

## play: the OP, approval pages and a demo client console on SQLite (in-process tasks): play both sides in two browser tabs
play: $(VENV)/.installed
	$(BIN)/python manage.py ciba_play

## serve-prod: the same, production-like: gunicorn, PostgreSQL, Redis, Celery worker and beat (throwaway services), until Ctrl-C
serve-prod: $(VENV)/.installed
	scripts/serve-production-like

## test: lint, migrations check, unit suite (oauthlib 4 and 3.3), system tests, PostgreSQL integration suite
test: lint docs unit unit-oauthlib3 system integration bench-smoke soak-smoke

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python manage.py makemigrations --check --dry-run django_ciba
	$(BIN)/python manage.py check --fail-level WARNING
	$(BIN)/mypy

docs: $(VENV)/.installed
	$(BIN)/sphinx-build -q -W -b html docs docs/_build/html

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit -q -p no:cacheprovider

unit-oauthlib3: $(VENV_OAUTHLIB3)/.installed
	$(VENV_OAUTHLIB3)/bin/pytest tests/unit -q -p no:cacheprovider

## system: the tests that run a whole project in processes of its own (tests/system): the quickstart
## in a fresh startproject, the demo, the example project as shipped, the soak harness's parts
system: $(VENV)/.installed
	$(BIN)/pytest tests/system -q -p no:cacheprovider

integration: $(VENV)/.installed
	scripts/run-integration

## bench: the benchmark (gunicorn, PostgreSQL, Redis, Celery, wrk; ~13-15 min with 1M rows). The table
## has one section per configuration: production (Redis cache, Celery worker), embedded-postgres and
## embedded-sqlite (in-process tasks, local-memory cache; --configs picks them, --server gthread,asgi
## adds uvicorn's ASGI worker), each scenario with its ratio to DOT's client_credentials of the same
## section and a 'x reference' ratio to node-oidc-provider, whose rows (client_credentials, pending
## poll, bc-authorize) are measured between the first section's rounds (benchmarks/oidc_provider;
## needs node); without node: "reference skipped: <reason>" (--no-reference turns it off)
bench: $(VENV)/.installed
	benchmarks/run --profile pending-poll

## bench-smoke: the same harness in about a minute (production configuration only, tiny seeds, sweep
## 1 and 4, no 1M rows; no thresholds; no reference, so no node or network)
bench-smoke: $(VENV)/.installed
	benchmarks/run --smoke

## soak: the soak run (600 s of mixed traffic after a 60 s warm-up, ~12 min); exits 1 on
## any unexpected error or when the memory of a gunicorn or Celery process group grows
soak: $(VENV)/.installed
	benchmarks/soak

## soak-smoke: the same in ~2 min (60 s of traffic; run by make test): exits 1 on unexpected errors only
soak-smoke: $(VENV)/.installed
	benchmarks/soak --smoke

clean:
	rm -rf $(VENV) $(VENV_OAUTHLIB3) example_project/db.sqlite3 example_project/db.sqlite3-wal example_project/db.sqlite3-shm tests/integration/node/node_modules
