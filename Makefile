# Development entry points. `make run` brings everything up; `make test` runs the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# PING the default local Redis with bash alone, so the check needs neither redis-cli nor the venv.
define redis_answers
(exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && IFS= read -r -t 2 reply <&3 && [[ "$$reply" == +PONG* ]]) 2>/dev/null
endef

.PHONY: venv run test test-fast lint bench bench-capacity bench-knowledge bench-ws soak chaos chaos-ci clean redis chromium pgbouncer console console-lint console-test

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev,local-embeddings]'
	touch $(STAMP)

run: venv
	$(BIN)/chatai up

# Start the local redis-server when REDIS_URL is the default one and nothing answers there.
redis:
	@case "$${REDIS_URL:-redis://127.0.0.1:6379}" in \
	  redis://127.0.0.1:6379*|redis://localhost:6379*) ;; \
	  *) exit 0 ;; \
	esac; \
	if $(redis_answers); then exit 0; fi; \
	if ! command -v redis-server >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	fi; \
	if ! command -v redis-server >/dev/null; then \
	  echo "Redis does not answer on 127.0.0.1:6379 and redis-server is not installed." >&2; \
	  echo "Install it with:  apt-get install -y redis-server" >&2; \
	  exit 1; \
	fi; \
	echo "starting redis-server on 127.0.0.1:6379"; \
	redis-server --daemonize yes --port 6379 --save "" --appendonly no >/dev/null; \
	for _ in $$(seq 50); do if $(redis_answers); then exit 0; fi; sleep 0.1; done; \
	echo "redis-server was started but does not answer on 127.0.0.1:6379" >&2; \
	exit 1

# The widget's browser tests drive Debian's chromium (Playwright never downloads a browser of its own).
chromium:
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "chromium is not installed; install it with:  apt-get install -y chromium" >&2; \
	  exit 1; \
	fi

# tests/e2e/test_pgbouncer.py runs the stack behind Debian's pgbouncer (transaction mode).
pgbouncer:
	@if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing pgbouncer"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; \
	else \
	  echo "pgbouncer is not installed; install it with:  apt-get install -y pgbouncer" >&2; \
	  exit 1; \
	fi

# The console (web/, a Next.js static export): installed when its lock changed, built when its sources
# changed (cli/console_build.py keeps the stamp); a missing Node.js >= 18 is an error here, with the fix.
CONSOLE := $(BIN)/python -m cli.console_build
# Runs an npm script of the console's, after `npm ci` when node_modules is missing or stale; skips with a
# note while web/package.json does not exist.
define console_npm
@if [ ! -f web/package.json ]; then echo "console: no web/package.json yet; skipping npm $(1)"; \
else $(CONSOLE) install && cd web && npm $(1); fi
endef

console: venv
	$(CONSOLE) build

console-lint: venv
	$(call console_npm,run typecheck)
	$(call console_npm,run lint)

# The console's Vitest suite.
console-test: venv
	$(call console_npm,test)

# The browser journey of tests/e2e serves web/out, so the console is built before pytest starts.
test: venv redis chromium pgbouncer console console-test
	$(BIN)/pytest -q

# The unit layer alone: no services, no processes.
test-fast: venv
	$(BIN)/pytest -q -m unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	@$(MAKE) --no-print-directory console-lint

bench: venv redis
	$(BIN)/python bench/chat_pipeline.py

# The whole stack as `make run` starts it, ramped to saturation (ARGS=--quick, ARGS='--broker amqp://…').
bench-capacity: venv redis
	$(BIN)/python bench/capacity.py $(ARGS)

# Ingest rate and search at scale; SIZES=100000,1000000 adds the 1M-chunk run (long on 2 cores).
bench-knowledge: venv redis
	nice -n 10 $(BIN)/python bench/knowledge.py --sizes $${SIZES:-100000}

# The whole stack under steady chat traffic for MINUTES, watched for leaks and lost work (bench/soak.py;
# RATE turns a second, SOAK_ARGS for its other options).
MINUTES ?= 30
RATE ?= 5
soak: venv redis
	$(BIN)/python bench/soak.py --minutes $(MINUTES) --rate $(RATE) $(SOAK_ARGS)

# 10,000 WebSockets on one API process: memory per socket, delivery latency, slow consumers, reconnects.
bench-ws: venv redis
	$(BIN)/python -m bench.ws_fanout

# Faults injected into the whole stack under traffic, with what was lost or doubled (bench/chaos.py);
# BROKER=amqp://guest:guest@127.0.0.1:5672/ runs it with RabbitMQ as the broker (a vhost of its own).
chaos: venv
	$(BIN)/python bench/chaos.py $(if $(BROKER),--broker $(BROKER))

# The short variant CI runs: one fault of each kind, about three minutes.
chaos-ci: venv
	$(BIN)/python bench/chaos.py --short $(if $(BROKER),--broker $(BROKER))

# Stops the embedded Postgres under .data (it outlives `make run` on purpose) and removes its data.
clean:
	@if [ -f .data/postgres/postmaster.pid ] && [ -x $(BIN)/python ]; then \
	  echo "stopping the embedded Postgres"; \
	  $(BIN)/python -c 'from pathlib import Path; from core.embedded_db import stop_server; stop_server(Path(".data/postgres"))'; \
	fi
	rm -rf .data
