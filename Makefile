# Two entry points: `make run` (set up + build the demo + start the app) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKSPACE ?= cache/demo
# make test: parallel pytest workers (one per core of the 2-core target; 0: the suite in one process)
TEST_WORKERS ?= 2
SHELL := /bin/bash
# pip warns once per package that a folder of the machine's configured extra indexes (file:///opt/...) lacks
# it: that is the machine's pip configuration, not the project's, so those lines are kept out of the install
# log; every other line (and pip's exit status, through pipefail) stays.
# (pipefail set in each recipe line: make 3.81 ignores .SHELLFLAGS)
PIP := set -o pipefail; $(BIN)/pip
MACHINE_NOTES := 2>&1 | { grep -v "^WARNING: Location 'file:///opt/" || true; }

.PHONY: run test demo app browser clean

$(STAMP): requirements.txt requirements-ray.txt requirements-zoo.txt requirements-oracles.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip $(MACHINE_NOTES)
	# --no-compile, then one compileall over every core: pip compiles each package's bytecode on one core (half
	# of the install's time); compileall writes the same .pyc files, in parallel. Files some packages ship for
	# other Python versions do not compile: compileall reports them as pip does not, so its status is not read.
	$(PIP) install --quiet --no-compile -r requirements.txt $(MACHINE_NOTES)
	# The Ray engine is an optional extra; the test suite exercises it, so the dev venv has it.
	$(PIP) install --quiet --no-compile -r requirements-ray.txt $(MACHINE_NOTES)
	# The model-zoo extra (torchxrayvision, timm, MONAI, safetensors; also the real label files the tests parse).
	$(PIP) install --quiet --no-compile -r requirements-zoo.txt $(MACHINE_NOTES)
	# Oracles of the tests (pytorch-grad-cam, zennit, Quantus). Quantus asks for the GUI opencv-python, which
	# would shadow the headless build: it is installed without its dependencies (all present above).
	$(PIP) install --quiet --no-compile -r requirements-oracles.txt $(MACHINE_NOTES)
	$(PIP) install --quiet --no-compile --no-deps quantus==0.6.0 $(MACHINE_NOTES)
	-env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1
	# setuptools' notice about editable installs is information, not a problem: kept out of the install log
	set -o pipefail; PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --no-deps --no-build-isolation -e . $(MACHINE_NOTES)
	touch $(STAMP)

# Headless Chromium + driver for the end-to-end browser test (Debian packages; needs root, as CI has).
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "warning: could not install chromium; the browser test will be skipped"

demo: $(STAMP)
	$(BIN)/trust demo --workspace $(WORKSPACE)

app: $(STAMP)
	TRUST_WORKSPACE=$(WORKSPACE) $(BIN)/streamlit run app.py --server.headless true --server.address 127.0.0.1 --server.port 8501

run: demo app

test: $(STAMP) browser
	# one pytest-xdist worker per core (two on the 2-core target), each test file whole in one worker (its
	# module fixtures made once); tests/conftest.py shares the cores between the workers' torch threads
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) cache
