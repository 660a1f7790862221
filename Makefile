# Two commands on a fresh machine (Python 3.11+): `make demo` and `make test`.
# Each creates .venv and installs what it needs the first time: the demo only its own extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

demo: $(VENV)/.demo
	$(BIN)/cdc-router demo
	@echo "cdc-router is $(abspath $(BIN))/cdc-router: run '. $(VENV)/bin/activate' to put it on the PATH (README: Command line)"

test: $(VENV)/.test
	$(BIN)/pytest

install: $(VENV)/.test

$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cdc-router needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $@

$(VENV)/.demo: pyproject.toml $(VENV)/.created
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.created
	$(BIN)/pip install --quiet -e '.[demo,test]'
	touch $@ $(VENV)/.demo

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
