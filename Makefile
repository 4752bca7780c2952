# Set-up and everyday targets. `make demo` and `make test` work on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean browser

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test,ml,serve]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shopkeeper --home .shopkeeper-demo demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The dashboard's browser test needs Debian's chromium and chromium-driver: installed here
# when missing, as root with apt-get; otherwise a note says the browser tests will skip.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium and chromium-driver for the browser tests"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver >/dev/null; \
	else \
		echo "note: no /usr/bin/chromium or /usr/bin/chromedriver (and no root apt-get):" \
			"the browser tests will be skipped"; \
	fi

test: lint browser
	$(BIN)/pytest -q

test-fast: lint
	$(BIN)/pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) .shopkeeper-demo .pytest_cache .mypy_cache .ruff_cache
