# Ferry: two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Installs are cached behind stamp files, so only the first run is slow.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PY_STAMP   := $(VENV)/.ferry-installed
NODE_STAMP := contracts/node_modules/.ferry-installed
# btcd (the Bitcoin regtest node of tests and demo), built from source with `go install`.
# Bumping BTCD_VERSION changes the stamp name, so the next `make install` rebuilds it.
BTCD_VERSION := v0.26.2
TOOLS_BIN    := .ferry/tools/bin
BTCD_STAMP   := .ferry/tools/btcd-$(BTCD_VERSION).stamp
# simd (the Cosmos SDK v0.50.3 simapp node of tests and demo), built from the pinned wrapper
# module adapters/cosmos/simd; editing its go.mod or go.sum rebuilds it on the next `make install`.
SIMD_MODULE := adapters/cosmos/simd
SIMD_BIN    := $(TOOLS_BIN)/simd
SIMD_STAMP  := .ferry/tools/simd.stamp
# helm (lints and renders the chart deploy/helm/ferry in tests/unit/test_deploy_helm.py), built
# from the Go module proxy; bumping HELM_VERSION changes the stamp name, so `make install` rebuilds it.
HELM_VERSION := v3.21.4
HELM_STAMP   := .ferry/tools/helm-$(HELM_VERSION).stamp
# Debian's chromium (the headless browser tests/integration/test_status_page.py drives through
# Playwright; `playwright install` is never run): apt-get installs it once when missing.
CHROMIUM     := /usr/bin/chromium
CHROMIUM_STAMP := .ferry/tools/chromium.stamp

.PHONY: install demo test bench lint clean

install: $(PY_STAMP) $(NODE_STAMP) $(BTCD_STAMP) $(SIMD_STAMP) $(HELM_STAMP) postgres-server $(CHROMIUM_STAMP) promtool

# promtool (Debian's prometheus package): checks deploy/prometheus/*.yml and runs the alert rule
# unit tests of tests/unit/test_observability.py. Installed once when missing.
.PHONY: promtool
promtool:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  echo ">> installing promtool (Debian package prometheus)"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: installing prometheus needs root (apt-get)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi

# PostgreSQL server binaries (Debian's package) for the tests that start their own cluster
# (tests/pg.py: relayer replicas, migrations on PostgreSQL). Installed once when missing.
.PHONY: postgres-server
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  echo ">> installing PostgreSQL (Debian package postgresql)"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: installing postgresql needs root (apt-get)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	fi

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

$(BTCD_STAMP):
	@command -v go >/dev/null 2>&1 || { echo "error: 'go' not found on PATH; install Go (https://go.dev/dl/; btcd $(BTCD_VERSION) needs go >= 1.25) to build btcd" >&2; exit 1; }
	@echo ">> building btcd $(BTCD_VERSION) with go install (first run only, about a minute)"
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(abspath $(TOOLS_BIN)) go install -v github.com/btcsuite/btcd@$(BTCD_VERSION)
	@rm -f .ferry/tools/btcd-*.stamp
	@touch $@

$(SIMD_STAMP): $(SIMD_MODULE)/go.mod $(SIMD_MODULE)/go.sum
	@command -v go >/dev/null 2>&1 || { echo "error: 'go' not found on PATH; install Go (https://go.dev/dl/; the simd wrapper module needs go >= 1.23) to build simd" >&2; exit 1; }
	@echo ">> building simd (Cosmos SDK v0.50.3 simapp) with go build (first run only, a few minutes)"
	@mkdir -p $(TOOLS_BIN)
	cd $(SIMD_MODULE) && GOFLAGS=-mod=mod go build -o $(abspath $(SIMD_BIN)) cosmossdk.io/simapp/simd
	@touch $@

$(SIMD_BIN): $(SIMD_STAMP)

$(HELM_STAMP):
	@command -v go >/dev/null 2>&1 || { echo "error: 'go' not found on PATH; install Go (https://go.dev/dl/; helm $(HELM_VERSION) needs go >= 1.26) to build helm" >&2; exit 1; }
	@echo ">> building helm $(HELM_VERSION) with go install (first run only, about two minutes)"
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(abspath $(TOOLS_BIN)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@rm -f .ferry/tools/helm-*.stamp
	@touch $@

$(CHROMIUM_STAMP):
	@mkdir -p $(dir $@)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "error: $(CHROMIUM) is missing and installing it needs root: run 'apt-get install chromium' as root, then make install" >&2; exit 1; fi; \
	  echo ">> installing chromium (Debian package, for the status page browser test)"; \
	  echo ">> apt-get update"; apt-get update -q && \
	  echo ">> apt-get install chromium (a few minutes on the first run)" && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium || exit 1; \
	fi
	@$(CHROMIUM) --version 2>/dev/null || { echo "error: $(CHROMIUM) does not run" >&2; exit 1; }
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
