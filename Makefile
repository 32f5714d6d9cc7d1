# Two commands set everything up:  `make demo` (install + train the demo)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/demo.yaml

.PHONY: install demo test browser clean bench bench-quick

install: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	rm -rf emseg_plugins.egg-info  # stale entry points would shadow the fresh ones
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip check
	touch $@

demo: install
	$(BIN)/pytc-train --config-file $(CONFIG)

test: install browser
	$(BIN)/python -m pytest -q tests

# Every benchmark, one report: benchmarks/RESULTS.md (full: over an hour on 2 CPU cores; quick: about 7 minutes).
bench: install
	$(BIN)/python benchmarks/run_all.py

bench-quick: install
	$(BIN)/python benchmarks/run_all.py --quick

# The neuroglancer viewer test drives a real headless Chromium (Debian's `chromium`); where it cannot
# be installed (no root, no apt) that one test says so and skips.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null) ; } || \
	  echo "note: chromium not installed; the neuroglancer browser test will be skipped"

clean:
	rm -rf $(VENV) outputs build *.egg-info
