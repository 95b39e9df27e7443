# Training Tricks Lab. `make lab` opens the course, `make test` runs every test.
# Both create .venv (pinned by constraints.txt) and prepare the CIFAR-10 cache first.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
SHARED   := ../shared/data/cifar10-jpg.tar.gz
PROFILE  ?= quick
PORT     ?= 8888
# Jupyter refuses to start as root (common in containers) unless told it may
ROOT_OK  := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=
# glibc re-maps large activation buffers on every training step unless told to keep them: set
# before Python starts (kernels inherit it), this cut CPU training time 15-20% with identical results
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184

.PHONY: help venv data lab test lint browser-deps nightly bench site clean

help:
	@echo "make lab      set up, then open the course in JupyterLab (PORT=8888, LAB_ARGS=extra jupyter options)"
	@echo "make test     set up, then run the whole test suite (notebooks in the smoke profile)"
	@echo "make lint     ruff on the code and notebooks; notebooks must be committed without outputs"
	@echo "make browser-deps   install Debian's chromium for the browser test, if missing (needs root)"
	@echo "make data     prepare data/cifar10.npz (offline copy in $(SHARED) if present, else download)"
	@echo "make nightly PROFILE=quick   run every notebook headless and write a report"
	@echo "make bench    loader vs compute throughput, and seconds to 70%/80% test accuracy, the course's baseline recipe vs the one it replaced (about 10 min on 2 CPU cores)"
	@echo "make site REPORT=reports/nightly-...   the course website from a nightly report (default: the newest)"

# Exact versions come from constraints.txt; pyproject.toml keeps wide ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (Training Tricks Lab)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# The script does nothing when a valid cache exists.
data: venv
	@if [ -f "$(SHARED)" ]; then src="$(SHARED)"; else src=download; fi; \
	$(PY) data_scripts/prepare_cifar10.py --source "$$src"

lab: venv data
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(ROOT_OK) $(LAB_ARGS)

test: venv data browser-deps
	COURSE_PROFILE=smoke $(PY) -m pytest

# Rules in pyproject.toml ([tool.ruff]); the same checks run from .pre-commit-config.yaml.
lint: venv
	$(VENV)/bin/ruff check course_lib tests data_scripts conftest.py notebooks
	@$(VENV)/bin/nbstripout --verify --keep-id notebooks/*.ipynb || { echo "Notebooks must be committed" \
	  "without outputs: $(VENV)/bin/nbstripout --keep-id notebooks/*.ipynb"; exit 1; }

# tests/test_browser.py drives JupyterLab in Debian's chromium (Playwright cannot download its
# own browser offline). Installed only when missing; COURSE_CHROMIUM may name another binary.
browser-deps:
	@if [ -n "$$COURSE_CHROMIUM" ] || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "The browser test needs /usr/bin/chromium: sudo apt-get install -y chromium" \
	  "(or set COURSE_CHROMIUM to a Chromium binary)"; exit 1; fi

nightly: venv data
	$(PY) -m course_lib.tools.nightly --profile $(PROFILE)

# glibc keeps freed memory instead of returning it to the OS (set before python starts): torch's
# CPU ops stop paying for page faults on every step, 15-20% faster here with identical results.
bench: venv data
	$(PY) -m course_lib.tools.bench --time-to-accuracy  # GLIBC_TUNABLES: exported above

# The course website: notebooks rendered with the report's outputs (never re-executed) and the
# claims ledger, into site/_build/html. LAUNCH_URL=...{path}... adds a live link to every page.
site: venv
	$(PY) -m course_lib.tools.site --out site/_build $(if $(REPORT),--report "$(REPORT)") \
	  $(if $(LAUNCH_URL),--launch-url "$(LAUNCH_URL)")

clean:
	rm -rf notebooks/results results reports test-artifacts .pytest_cache
