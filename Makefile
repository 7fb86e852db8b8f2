# Promo Portal: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP_QUIET := --quiet --disable-pip-version-check
# Some machines list package mirrors that do not exist; pip warns per package. Keep real errors.
QUIET_PIP_NOISE := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: demo test lint format install assets messages chromium worker clean

## demo: install into .venv, migrate the embedded SQLite database, load the demo merchant, serve
demo: install assets messages
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo --host $(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT) --noreload

## test: install what the suite needs, lint, then run the whole suite
test: install assets messages chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=promo_portal.settings.test
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip setuptools wheel 2>&1 | $(QUIET_PIP_NOISE)
	set -o pipefail; $(BIN)/python -m pip install $(PIP_QUIET) -e '.[cpu,dev]' 2>&1 | $(QUIET_PIP_NOISE)
	touch $@

## assets: Bootstrap, htmx and Swagger UI from the npm registry (served by Django, no CDN)
assets: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## messages: compile the translations (the .mo files are committed; compiling needs gettext)
messages: install
	@if command -v msgfmt >/dev/null 2>&1; then \
		$(BIN)/python manage.py compilemessages --ignore=$(VENV) --ignore=node_modules -v 0; \
	else echo "msgfmt not found (apt-get install gettext): using the committed .mo files"; fi

## chromium: Debian's package for the browser tests (Playwright drives it; no browser download),
## with a CJK font so that the Chinese pages' screenshots show their text
chromium:
	@{ command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; } || { \
		echo "Installing Debian's chromium and fonts-noto-cjk for the browser tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## worker: a Celery worker for all queues (needs CELERY_BROKER_URL)
worker: install
	$(BIN)/celery -A promo_portal worker -Q default,scoring,training --loglevel INFO

clean:
	rm -rf $(VENV) node_modules var/staticfiles .pytest_cache
