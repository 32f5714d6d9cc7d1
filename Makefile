# Two commands set everything up:  `make demo` (install + train the demo)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/demo.yaml

.PHONY: install demo test clean

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

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) outputs build *.egg-info
