# make demo | make test | make lab | make present | make lint
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8866

.PHONY: venv demo test lab present lint clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(PY) -m patchcore_lite demo

test: venv
	$(PY) -m ruff check patchcore_lite tests
	$(PY) -m pytest -q tests

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

lint: venv
	$(PY) -m ruff check patchcore_lite tests

clean:
	rm -rf runs .pytest_cache
