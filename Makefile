# Each target sets itself up on a fresh clone: a .venv with the package and its test extras,
# torch pinned by constraints.txt (the CPU build). A second run skips the install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup test test-all search clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

search: $(STAMP)
	@echo "mnas search is not yet available (see the open search issue); showing the default space's reference network instead:"
	$(VENV)/bin/mnas describe mnasnet_a1

clean:
	rm -rf $(VENV) build *.egg-info
