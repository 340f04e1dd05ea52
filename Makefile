# The two commands of the README's quick start, and what they need.
#   make demo   runs the agent on this host against rotel, a real OTLP receiver
#   make test   runs the whole test suite (CI runs it through .ci/run)
# Both start from a machine that has only Python 3.11+ and, for the image
# tests, a running Docker engine; everything else is installed here.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint readme

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

demo: $(STAMP)
	$(VENV)/bin/python scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check otel_collector tests bench scripts
	$(VENV)/bin/mypy

test: lint
	scripts/install-test-tools
	$(VENV)/bin/pytest

bench: $(STAMP)
	scripts/install-test-tools
	$(VENV)/bin/python -m bench

readme: $(STAMP)
	$(VENV)/bin/python scripts/render-readme
