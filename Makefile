# Two entry points for a newcomer: `make demo` and `make test`. Both create .venv if missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.proctovision-installed
DEMO_OUT ?= demo_output

.PHONY: setup demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/proctovision demo --out $(DEMO_OUT)

test: setup
	$(PY) -m pytest -q --durations=25

bench: setup
	$(VENV)/bin/proctovision bench --backbones resnet34,efficientnet_lite0

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
