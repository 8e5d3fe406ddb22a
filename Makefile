# notebench developer commands (GNU make). Every target sets up what it needs first.
#
#   make test       system packages (as root), venv, wheel, lowest-versions venv, node tools
#                   (deploy/'s proxy, tests/browser/tus); then ruff and the whole test suite
#   make test-min-versions  only the lowest-versions tests: $(MIN_VENV) holds every direct
#                   dependency at its floor (constraints-min.txt) and the wheel
#   make run        venv, wheel; then JupyterLab with notebench on $(RUN_DIR) (prints the Lab and
#                   Voila dashboard URLs + token)
#   make bench      $(BENCH_VENV) with comparison packages; runs tests/benchmarks/bench_*.py
#   make lint       ruff only
#   make wheel      build dist/notebench-<version>-py3-none-any.whl
#   make clean      remove build outputs; `make distclean` also removes the venvs
#
# Variables: PYTHON VENV BENCH_VENV MIN_VENV RUN_DIR IP PORT, PYTEST_ARGS (extra pytest
# arguments), RUN_ARGS (extra `jupyter lab` arguments). Example: make test VENV=/tmp/nb-venv
#
# The venv gets notebench as a wheel built from this tree (the install users get), never an
# editable install: the folders are remapped (server_ext/ -> notebench.server) and the
# extension's enabling config is wheel shared data. The dependencies are installed again only
# when pyproject.toml or constraints.txt change; notebench itself is rebuilt and reinstalled
# on every run, so tests always see the current code.

PYTHON ?= python3
VENV ?= .venv
BENCH_VENV ?= .venv-bench
MIN_VENV ?= .venv-min
RUN_DIR ?= .run
IP ?= 127.0.0.1
PORT ?= 8888
PYTEST_ARGS ?=
RUN_ARGS ?=

# The dev dependency group (pyproject's [dependency-groups]): what building the wheel needs
# (the [build-system] requires; built without isolation) and ruff. jupyter-builder brings
# `jlpm` and `jupyter-builder`, which build labext/. Groups need pip 25.1 or later.
PIP_FOR_GROUPS = "pip>=25.1"
# the packages the benchmarks compare notebench with (never in the test venv:
# jupyter-resource-usage enables itself in every server of its environment)
BENCH_PACKAGES = tensorboard mlflow lightning jupyter-resource-usage
# Debian packages of the browser tests, of promtool (alert rule checks) and Prometheus, and
# nginx (the deployment's front, tests/deploy)
BROWSER_PACKAGES = chromium fonts-liberation
PROMETHEUS_PACKAGES = prometheus
NGINX_PACKAGES = nginx openssl

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := help

PIP = $(VENV)/bin/python -m pip
BENCH_PIP = $(BENCH_VENV)/bin/python -m pip
MIN_PIP = $(MIN_VENV)/bin/python -m pip
INSTALL = install -c constraints.txt
BUILD_STAMP = $(VENV)/.notebench-build-deps
DEPS_STAMP = $(VENV)/.notebench-deps
BENCH_STAMP = $(BENCH_VENV)/.notebench-deps
MIN_STAMP = $(MIN_VENV)/.notebench-deps
WHEEL = $$(ls dist/notebench-*.whl)

.PHONY: help test test-min-versions run bench lint wheel install min-install system-packages \
	labext labext-test deploy-tools test-node-tools clean distclean

help:
	@sed -n '1,/^$$/p' $(firstword $(MAKEFILE_LIST))

# ------------------------------------------------------------------------------ set-up

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(BUILD_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) $(INSTALL) $(PIP_FOR_GROUPS)
	$(PIP) $(INSTALL) --group dev
	touch $@

# Browser tests need chromium (+ fonts), alert rule tests need promtool. Installed only when
# running as root on a Debian-like system and missing; otherwise those tests skip themselves.
system-packages:
	@if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then exit 0; fi; \
	pkgs=""; \
	if ! command -v chromium >/dev/null \
	   || ! dpkg-query -W -f='$${Status}' fonts-liberation 2>/dev/null | grep -q "ok installed"; \
	then pkgs="$$pkgs $(BROWSER_PACKAGES)"; fi; \
	if ! command -v promtool >/dev/null; then pkgs="$$pkgs $(PROMETHEUS_PACKAGES)"; fi; \
	if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null; then \
	  pkgs="$$pkgs $(NGINX_PACKAGES)"; fi; \
	if [ -n "$$pkgs" ]; then \
	  echo "installing system packages:$$pkgs"; \
	  apt-get update; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$pkgs; \
	fi

# ---- labext/ (the JupyterLab frontend extension, TypeScript) -------------------------------
# `labext` installs its node packages (jlpm, from yarn.lock; again only when package.json or
# yarn.lock change) and builds it (tsc, then `jupyter-builder build`) into labext/labextension,
# which the wheel ships as shared data (share/jupyter/labextensions/notebench). `labext-test`
# runs its unit tests (vitest). Needs Node >= 20.19 on PATH.
JLPM = cd labext && PATH="$(abspath $(VENV))/bin:$$PATH" "$(abspath $(VENV))/bin/jlpm"
LABEXT_STAMP = labext/node_modules/.notebench-installed

$(LABEXT_STAMP): labext/package.json labext/yarn.lock | $(BUILD_STAMP)
	$(JLPM) install --immutable
	touch $@

labext: $(LABEXT_STAMP)
	$(JLPM) build:prod

labext-test: $(LABEXT_STAMP)
	$(JLPM) test

# ---- deploy/ (the JupyterHub deployment's node tools: configurable-http-proxy) -------------
DEPLOY_STAMP = deploy/node_modules/.notebench-installed

$(DEPLOY_STAMP): deploy/package.json deploy/package-lock.json
	cd deploy && npm ci --no-audit --no-fund
	touch $@

deploy-tools: $(DEPLOY_STAMP)

# ---- tests/browser/tus (tus-js-client, the browser's tus client in the upload tests) ------
TUS_STAMP = tests/browser/tus/node_modules/.notebench-installed

$(TUS_STAMP): tests/browser/tus/package.json tests/browser/tus/package-lock.json
	cd tests/browser/tus && npm ci --no-audit --no-fund
	touch $@

test-node-tools: $(TUS_STAMP)

# ----------------------------------------------------------------------------- wheel

wheel: $(BUILD_STAMP) labext
	rm -rf dist
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .

# the heavy part: torch (pinned CPU wheel) and notebench's dependencies with the torch, hub
# and test extras
$(DEPS_STAMP): pyproject.toml constraints.txt | wheel
	$(PIP) $(INSTALL) torch==2.13.0
	$(PIP) $(INSTALL) "$(WHEEL)[torch,hub,test]"
	touch $@

install: $(DEPS_STAMP) wheel
	$(PIP) install -q --no-deps --force-reinstall "$(WHEEL)"

# The lowest-versions venv: every direct dependency at its floor (constraints-min.txt, which
# leaves torch out and says why), their own dependencies as resolved. Made anew, from
# nothing, when pyproject.toml or constraints-min.txt change (about 2.5 minutes with the
# network to PyPI); notebench itself goes in on every run, without dependencies.
$(MIN_STAMP): pyproject.toml constraints-min.txt
	rm -rf "$(MIN_VENV)"
	$(PYTHON) -m venv "$(MIN_VENV)"
	$(MIN_PIP) install -q -r constraints-min.txt
	touch $@

min-install: $(MIN_STAMP) wheel
	$(MIN_PIP) install -q --no-deps --force-reinstall "$(WHEEL)"

# ----------------------------------------------------------------------------- targets

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check --extend-exclude "$(RUN_DIR)" .

# NOTEBENCH_MIN_VENV: the lowest-versions tests (tests/integration/test_min_versions.py)
# start their server from that venv; they skip where it is not set
test: system-packages install labext-test min-install deploy-tools test-node-tools
	$(VENV)/bin/ruff check --extend-exclude "$(RUN_DIR)" .
	NOTEBENCH_MIN_VENV="$(abspath $(MIN_VENV))" NOTEBENCH_WHEEL="$$(ls $(CURDIR)/dist/notebench-*.whl)" \
	  $(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-min-versions: install min-install
	NOTEBENCH_MIN_VENV="$(abspath $(MIN_VENV))" $(VENV)/bin/python -m pytest \
	  tests/integration/test_min_versions.py $(PYTEST_ARGS)

run: install
	mkdir -p "$(RUN_DIR)"
	@echo "JupyterLab: http://$(IP):$(PORT)/lab (the token is in the server's log below)"
	@echo "Dashboard (Voila): http://$(IP):$(PORT)/voila/render/notebench/dashboards/dashboard.ipynb"
	$(VENV)/bin/notebench serve --root-dir "$(RUN_DIR)" --no-browser --ip=$(IP) \
	  --port=$(PORT) --ServerApp.port_retries=0 \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(RUN_ARGS)

$(BENCH_VENV)/bin/python:
	$(PYTHON) -m venv $(BENCH_VENV)

$(BENCH_STAMP): pyproject.toml constraints.txt | $(BENCH_VENV)/bin/python wheel
	$(BENCH_PIP) $(INSTALL) torch==2.13.0
	$(BENCH_PIP) $(INSTALL) "$(WHEEL)[torch,test]" $(BENCH_PACKAGES)
	touch $@

# benchmarks run with the bench venv's python from the repository root (PYTHONPATH lets
# them import the helpers in tests/)
bench: $(BENCH_STAMP) wheel
	$(BENCH_PIP) install -q --no-deps --force-reinstall "$(WHEEL)"
	for f in tests/benchmarks/bench_*.py; do \
	  [ -e "$$f" ] || { echo "no benchmarks in tests/benchmarks/"; break; }; \
	  echo "== $$f"; \
	  PYTHONPATH="$(CURDIR)" $(BENCH_VENV)/bin/python "$$f" || exit 1; \
	done

clean:
	rm -rf dist build .pytest_cache .ruff_cache .hypothesis tests/artifacts *.egg-info
	rm -rf labext/lib labext/labextension labext/tsconfig.tsbuildinfo
	find . \( -path ./.git -o -path "./$(VENV)" -o -path "./$(BENCH_VENV)" -o -path ./.venv \
	  -o -path ./.venv-bench -o -path "./$(MIN_VENV)" -o -path ./.venv-min \) -prune \
	  -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)" "$(BENCH_VENV)" "$(MIN_VENV)" labext/node_modules deploy/node_modules \
	  tests/browser/tus/node_modules
