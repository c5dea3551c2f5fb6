# `make demo` and `make test` each create or reuse .venv and install what they need.
# torch==2.13.0 is installed first: its CPU build is what pyproject's torch range then accepts,
# so pip never pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gauda-installed
DEMO_OUT ?= runs/demo
# OpenMP threads that sleep instead of spinning while they wait: on a shared CPU, spinning threads of
# one process starve the other's (a training step ran up to 6x slower; BENCHMARKS.md). On a quiet machine
# it costs speed (300 steps of the tiny mask autoencoder on two threads: 44.4 s against 31.0 s, BENCHMARKS.md):
# `make demo OMP_WAIT_POLICY=ACTIVE` when nothing else runs.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-fast lint format clean screenshot

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gauda demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check gauda tests benchmarks
	$(BIN)/ruff format --check gauda tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format gauda tests benchmarks
	$(BIN)/ruff check --fix gauda tests benchmarks

# The demo's report as a PNG (needs Debian's chromium: apt-get install chromium).
screenshot:
	chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --user-data-dir=$$(mktemp -d) --hide-scrollbars \
		--window-size=1280,6000 --screenshot=$(DEMO_OUT)/report.png file://$(abspath $(DEMO_OUT))/report.html

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
