# sipstack — developer entry points. `make test` is what CI runs (.ci/run).
# The interpreter .venv is made with: the distribution's /usr/bin/python3 when it is 3.11 or
# newer and can make a venv (Debian and Ubuntu build it with PGO and LTO: the proxy spends about
# 10-15 % less CPU per call on it than on a default source build such as pyenv's, which
# often comes first on PATH), else python3 from PATH. `make PYTHON=python3.12 test` chooses.
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
  $$p -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
  && { echo $$p; exit; }; done; echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
# Debian packages of the real peers the tests drive (installed when missing and we are root).
DEB_PKGS := sip-tester kamailio kamailio-tls-modules kamailio-outbound-modules baresip sipsak tshark iproute2 iptables
# And those the benchmarks compare against.
BENCH_DEB_PKGS := sip-tester kamailio

.PHONY: run test lint unit bench venv debs bench-debs clean

$(VENV)/.stamp-test: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.stamp-bench: $(VENV)/.stamp-test
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

venv: $(VENV)/.stamp-test

# `make run`: the server on its embedded default (UDP and TCP on 127.0.0.1:5060, SQLite in
# ./sipstack-data, domains localhost and 127.0.0.1).
run: venv
	$(VENV)/bin/sipstack serve $(ARGS)

debs:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEB_PKGS)"

bench-debs:
	@$(MAKE) --no-print-directory install-debs PKGS="$(BENCH_DEB_PKGS)"

install-debs:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing Debian packages:$$missing (not root; tests needing them will be skipped)"; \
	  fi; \
	fi

lint: venv
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

unit: venv
	$(PY) -m pytest -q

test: venv debs lint unit

bench: $(VENV)/.stamp-bench bench-debs
	$(PY) bench/parse.py
	$(PY) bench/options.py
	$(PY) bench/register.py
	$(PY) bench/proxy.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
