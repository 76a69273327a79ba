# sampan — two commands for a fresh Debian 12 machine, as root:
#   make demo    install what is needed and run a first container
#   make test    lint, type-check, and run unit, integration and parity tests
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
BIN := /usr/local/bin
DEB_PKGS := busybox-static libseccomp2 iproute2 python3-venv runc crun podman conmon skopeo procps debootstrap docker-registry tini nftables libnftables1 iperf3
STAMPS := $(ROOT)/.venv/.stamps

.PHONY: all deps venv install demo test lint typecheck unit integration parity bench clean

all: install

# Debian packages: installed only when one is missing.
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    -o Dpkg::Options::=--force-confold $$missing >/dev/null; \
	fi

$(STAMPS)/venv: pyproject.toml | deps
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@mkdir -p $(STAMPS) && touch $@

venv: deps $(STAMPS)/venv

# Fast launchers: pip's console scripts import `re` (~10 ms); ours start the
# interpreter with -I -S and put the source tree on sys.path directly.
install: venv
	@scripts/install-launchers.sh $(PY) $(ROOT) $(VENV)/bin $(BIN)

demo: install
	@scripts/demo.sh

lint: venv
	$(VENV)/bin/ruff check sampan tests bench
	$(VENV)/bin/ruff format --check sampan tests bench

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

# The parity suite runs twice: against runc (the reference) and sampan-runtime.
parity: install
	OCI_RUNTIME=runc $(PY) -m pytest -q tests/parity
	OCI_RUNTIME=$(VENV)/bin/sampan-runtime $(PY) -m pytest -q tests/parity

test: lint typecheck unit integration parity

bench: install
	$(PY) bench/runtime_start.py
	$(PY) bench/snapshot_prepare.py
	$(PY) bench/images_list.py
	$(PY) bench/pull.py
	$(PY) bench/daemon_pull.py
	$(PY) bench/container_run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
