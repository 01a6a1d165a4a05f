# One entry point for users, developers and CI. `make setup` is idempotent and
# is run by `make test` and `make run`, so a fresh clone needs nothing else.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEBS := mosquitto victoria-metrics
PORT ?= /dev/ttyUSB0

.PHONY: help setup test lint typecheck pytest run firmware flash bench-detect clean

help:
	@echo "make run        simulated bands -> bridge -> MQTT + time-series server (DURATION=s)"
	@echo "make test       lint, type-check and the whole test suite"
	@echo "make setup      create .venv, install the MicroPython VM and the servers"
	@echo "make firmware   compile the band's code to .mpy under build/firmware"
	@echo "make flash      deploy build/firmware to a board (PORT=$(PORT))"
	@echo "make bench-detect  detector accuracy and speed benchmark"

setup: $(STAMP) node_modules/.package-lock.json debs

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-fund --no-audit
	touch $@

# Servers the tests and `make run` start on loopback ports. Installed when root;
# otherwise the exact command is printed and tests that need them say so.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    for p in $$missing; do systemctl disable --now $$p >/dev/null 2>&1 || service $$p stop >/dev/null 2>&1 || true; done; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; \
	  fi; \
	fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check protocol host simulator tests

typecheck: setup
	$(VENV)/bin/mypy host simulator protocol

pytest: setup
	$(VENV)/bin/pytest

test: lint typecheck pytest

run: setup
	@echo "make run: not yet wired; the bridge issue gives it its content"; exit 1

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
