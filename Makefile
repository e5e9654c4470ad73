# Ferry: two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Installs are cached behind stamp files, so only the first run is slow.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PY_STAMP   := $(VENV)/.ferry-installed
NODE_STAMP := contracts/node_modules/.ferry-installed

.PHONY: install demo test bench lint clean

install: $(PY_STAMP) $(NODE_STAMP)

$(PY):
	@echo ">> creating Python virtualenv in $(VENV)"
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): pyproject.toml | $(PY)
	@echo ">> installing Python dependencies (first run takes a minute)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(NODE_STAMP): contracts/package.json contracts/package-lock.json
	@echo ">> installing solc and anvil from npm"
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: install
	$(VENV)/bin/ferry demo

test: install
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: install
	$(PY) bench/run_all.py

lint: install
	$(VENV)/bin/ruff check relayer adapters validators ledger api htlc contracts
	$(VENV)/bin/mypy relayer adapters validators ledger api

clean:
	rm -rf $(VENV) contracts/node_modules .ferry
