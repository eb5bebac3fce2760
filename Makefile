# Run `make help` for the list of targets.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
export LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export DAGSTER_HOME ?= $(LAKEHOUSE_HOME)/dagster_home

.DEFAULT_GOAL := help
.PHONY: help install system-deps lock demo test test-fast test-postgres dev lint bench bench-iov bench-game bench-freshness bench-crash bench-serve bench-stack bench-spark bench-discovery clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

install: system-deps $(STAMP) ## Create .venv and install the project with its test extras, pinned by constraints.txt (idempotent)

system-deps: ## Debian packages the tests need when missing: Java (PySpark), chromium (dashboard tests), the mysql client, PostgreSQL, docker-compose (config check only), nginx (the webserver's proxy, run natively)
	@missing=""; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v mysql >/dev/null 2>&1 || missing="$$missing default-mysql-client"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	test -x /usr/sbin/nginx || command -v nginx >/dev/null 2>&1 || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[serve,ml,postgres,spark,test]'
	@touch $(STAMP)

lock: ## Refresh constraints.txt: resolve pyproject.toml anew in a scratch venv and pin what it installed
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[serve,ml,postgres,spark,test]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^lakehouse' > constraints.txt
	rm -rf .lock-venv
	@echo "constraints.txt refreshed: run make test, then commit it"

demo: install ## Both seed pipelines end to end: GPS (VIN001 hourly stats), then game analytics with a late file
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: install lint ## Lint, type-check, then the whole suite (unit, sensor, S3 on loopback, real daemon)
	$(BIN)/pytest -q --durations=25

test-fast: install ## Run the suite without the end-to-end daemon tests
	$(BIN)/pytest -q -m "not e2e"

test-postgres: install ## The integration suite with every test's catalog on a real PostgreSQL server (started by the tests)
	LAKEHOUSE_TEST_CATALOG=postgres $(BIN)/pytest -q -m "not e2e and not sweep" tests/integration

dev: install ## Start the Dagster UI (webserver + daemon) on http://127.0.0.1:3000
	@umask 077 && mkdir -p "$(DAGSTER_HOME)"
	@umask 077 && test -f "$(DAGSTER_HOME)/dagster.yaml" || printf 'telemetry:\n  enabled: false\n' > "$(DAGSTER_HOME)/dagster.yaml"
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install ## ruff lint + format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: bench-iov bench-game bench-freshness bench-crash bench-serve bench-stack bench-spark bench-discovery ## All benchmarks (about an hour and a half)

bench-iov: install ## One hour of 3.6M GPS rows through the pipeline vs DuckDB alone; one DataScan tick
	$(BIN)/python -m benchmarks.run

bench-game: install ## Game ADS update after one new hour vs a full DuckDB recompute, at 30 and 60 days of history
	$(BIN)/python -m benchmarks.game

bench-freshness: install ## Landing -> ADS right under the real daemon (game batch, late batch, 3.6M-row hour) vs in process
	$(BIN)/python -m benchmarks.freshness

bench-serve: install ## The SQL endpoint: 8 MySQL clients as the masked third party (p50/p95/QPS) vs DuckDB on the same Arrow data
	$(BIN)/python -m benchmarks.serve

bench-stack: install ## One DataScan tick with 2,000 partitions, the catalog on a real PostgreSQL server vs SQLite
	$(BIN)/python -m benchmarks.stack

bench-spark: install ## The models on DuckDB vs Spark (2 workers, started here): the 3.6M-row hour and 30 days of game history, with Spark's time by phase
	$(BIN)/python -m benchmarks.spark

bench-discovery: install ## The game on the flat layout vs the partitioned one: a first load and one late file, with the rows each reads
	$(BIN)/python -m benchmarks.discovery

bench-crash: install ## The randomized crash sweep: SIGKILL `lakehouse scan` at random instants, recover, compare
	LAKEHOUSE_CRASH_SWEEP=$${LAKEHOUSE_CRASH_SWEEP:-30} $(BIN)/pytest -q -s -m sweep tests/integration/test_crash_sweep.py

clean: ## Remove the local lakehouse data (.lakehouse); raw files elsewhere are never touched
	rm -rf .lakehouse
