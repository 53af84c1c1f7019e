# Fresh-machine entry points: each target creates .venv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel; on a GPU machine use e.g. `make TORCH_SPEC="torch>=2.13" test`.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1

.PHONY: install demo test
install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install  ## train, evaluate and test HTLA on the embedded ICD-10-CM data (about 7 minutes on 2 cores)
	$(PY) run_htc.py

test: install  ## the test suite
	$(PY) -m pytest -q
