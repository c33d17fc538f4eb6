# make demo | make test | make lab | make present | make lint | make bench
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8866
DATA ?=
MODEL ?=
WEIGHTS ?= auto
# Voila serves the live demo notebook; cells tagged "lesson" (exercises, notes) stay out of the app.
# One pre-heated kernel, refilled at once when a page takes it, so every load opens at once; the
# server culls kernels idle 4 s without a page (closed tabs send nothing); websocket messages up
# to 64 MiB (uploads also come in 1 MiB pieces, so batches of any size pass). Same list as
# patchcore_lite/apps/live/serving.py VOILA_OPTS.
VOILA_OPTS = --port=$(PORT) --no-browser --Voila.ip=127.0.0.1 --Voila.port_retries=0 \
	--TagRemovePreprocessor.remove_cell_tags=lesson --preheat_kernel=True --pool_size=1 \
	--VoilaKernelManager.fill_delay=0 \
	--VoilaConfiguration.multi_kernel_manager_class=patchcore_lite.apps.live.serving.LiveKernelManager \
	--MappingKernelManager.cull_idle_timeout=4 --MappingKernelManager.cull_interval=1 \
	--MappingKernelManager.cull_connected=False \
	'--Voila.tornado_settings={"websocket_max_message_size":67108864}'

.PHONY: venv demo test lab present lint clean bench bench-anomalib bench-memory gpu-check \
	assignments handouts

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

# Self-study: your own copy of the student versions in $(LAB)/ (made once, never overwritten);
# JupyterLab serves that folder only. SOLUTIONS=1 serves the instructor versions (notebooks/,
# solutions in place) instead, to check your work. DATA=folder: your own category everywhere.
LAB ?= my-notebooks
SOLUTIONS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: venv
	$(PY) -m patchcore_lite.teaching.assignments --lab $(LAB)
	@export PATCHCORE_LITE_DATA="$(if $(DATA),$(abspath $(DATA)))" && \
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) \
		--ServerApp.root_dir="$(abspath $(if $(SOLUTIONS),notebooks,$(LAB)))"

# Course: nbgrader student versions in assignments/release/, both versions executed and
# autograded (one line). Offline HTML handouts (reusing those executions): handouts/ for the
# students (their release, unsolved), handouts/instructor/ with the solutions.
assignments: venv
	@$(PY) -m patchcore_lite.teaching.assignments

handouts: venv
	$(PY) -m patchcore_lite.teaching.handouts

# Live demo app: embedded data (or DATA=category folder), cached fit (or MODEL=file.pclite).
# The prepare step generates data / fits once (cached), so the page itself only loads the model.
present: venv
	@export PATCHCORE_LITE_DATA="$(if $(DATA),$(abspath $(DATA)))" \
		PATCHCORE_LITE_MODEL="$(if $(MODEL),$(abspath $(MODEL)))" \
		PATCHCORE_LITE_WEIGHTS="$(WEIGHTS)" && \
	prepared="$$($(PY) -m patchcore_lite.apps.live --prepare)" && eval "$$prepared" && \
	echo "Live demo: http://127.0.0.1:$(PORT)/  (Ctrl-C stops)" && \
	$(VENV)/bin/voila notebooks/06_live_demo.ipynb $(VOILA_OPTS)

# Performance (not run by CI; timings depend on the machine and its load)
bench: venv
	$(PY) -m patchcore_lite bench --json runs/bench/bench.json

bench-anomalib: venv  # installs anomalib into .bench-venv-anomalib/ on first use (~6 GB)
	$(PY) -m patchcore_lite bench --sizes 50,200 --anomalib --json runs/bench/anomalib.json

bench-memory: venv
	$(PY) benchmarks/memory_1000.py --json runs/bench/memory_1000.json

gpu-check: venv  # when a CUDA GPU is present: CUDA vs CPU results, then images/s
	$(PY) benchmarks/gpu_check.py --json runs/bench/gpu_check.json

lint: venv
	$(PY) -m ruff check patchcore_lite tests

clean:
	rm -rf runs .pytest_cache
