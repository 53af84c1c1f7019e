# Fresh-machine entry points: each target creates .venv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel; on a GPU machine use e.g. `make TORCH_SPEC="torch>=2.13" test`.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install demo app test
install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev,demo]'
	touch $@

demo: install  ## train, evaluate and test HTLA on the embedded ICD-10-CM data (about 7 minutes on 2 cores)
	$(PY) run_htc.py

app: install  ## the Gradio demo on what `make demo` trained, at http://127.0.0.1:7860
	$(PY) -m modeling_htla.demo outputs/htla-icd10cm

test: install  ## the test suite
	$(PY) -m pytest -q
