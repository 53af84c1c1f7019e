# Fresh-machine entry points: each target creates .venv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel; on a GPU machine use e.g. `make TORCH_SPEC="torch>=2.13" test`.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install browser demo app test
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

# The demo's browser test drives Debian's headless Chromium and its driver: installed here when missing and this
# user may (root, or sudo without a password); otherwise that one test skips naming this command (never under CI=true).
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $(BROWSER_PACKAGES); \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -q && sudo apt-get install -y -q $(BROWSER_PACKAGES); \
	else echo "make: no root to install Chromium; the browser test will skip (run: sudo apt-get install -y $(BROWSER_PACKAGES))"; fi

test: install browser  ## the test suite
	$(PY) -m pytest -q
