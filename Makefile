# AlphaPulse Backtest — developer entry points.  `make demo`, `make test`, `make lint`, `make bench`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out/demo

.PHONY: demo test lint bench install dev clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev,cluster]"
	@touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

demo: $(VENV)/.installed
	$(VENV)/bin/backtest run examples/demo.toml --out $(OUT)

test: $(VENV)/.dev
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(VENV)/.dev
	$(PY) -m pip install -q -e ".[dev,cluster,bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find backtest strategies datasets reports -name '*.nbi' -delete -o -name '*.nbc' -delete
