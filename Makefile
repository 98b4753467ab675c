# CryptoDesk — `make run` serves the app, `make test` runs every check. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint fmt check worker beat bench bench-auth bench-market bench-portfolio bench-backtest bench-realtime bench-optimize bench-triggers migrate seed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: export DEBUG ?= 1
run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	@# the server prints its address and the demo login last, once it answers
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --no-input

seed: $(STAMP)
	$(BIN)/python manage.py seed_demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: $(STAMP)
	DJANGO_SETTINGS_MODULE=cryptodesk.settings_test $(BIN)/python manage.py check
	DJANGO_SETTINGS_MODULE=cryptodesk.settings_test $(BIN)/python manage.py makemigrations --check --dry-run

test: lint check
	@echo "Exactness on the embedded default (SQLite, local memory), then everything on the configured services:"
	env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL $(BIN)/python -m pytest -q cryptodesk/tests/test_exact_decimals.py portfolios/tests/test_numbers.py
	@# two workers (pytest-xdist), one per core: each has its own test database, cache and channel prefixes
	$(BIN)/python -m pytest -n 2

worker: $(STAMP)
	$(BIN)/celery -A cryptodesk worker -Q celery,backtests --loglevel=INFO

beat: $(STAMP)
	$(BIN)/celery -A cryptodesk beat --loglevel=INFO

bench: bench-auth bench-market bench-portfolio bench-backtest bench-realtime bench-optimize bench-triggers

bench-auth: $(STAMP)
	$(BIN)/python bench/auth.py

bench-market: $(STAMP)
	$(BIN)/python bench/market.py

bench-portfolio: $(STAMP)
	$(BIN)/python bench/portfolio.py

bench-backtest: $(STAMP)
	$(BIN)/python bench/backtest.py

bench-realtime: $(STAMP)
	$(BIN)/python bench/realtime.py

bench-optimize: $(STAMP)
	$(BIN)/python bench/optimize.py

bench-triggers: $(STAMP)
	$(BIN)/python bench/triggers.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
