# Each target sets itself up on a fresh clone: a .venv with the package and its test extras,
# torch pinned by constraints.txt (the CPU build). A second run skips the install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup lint test test-faults test-all search clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# ruff (rules in pyproject.toml, the whole tree) and mypy (strict on the four packages and bench/).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The slow tests the README's reliability table cites (SIGKILL and resume, signals, node loss):
# the fast ones among them already run in `make test`.
test-faults: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS) $$($(PY) tests/test_docs.py --reliability-tests)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# A real search on the embedded default (scikit-learn's bundled digits): the first run also times
# this machine's latency table (runs/latency/), later runs reuse it. Extra flags: SEARCH_ARGS=...
SEARCH_ARGS ?=
search: $(STAMP)
	$(VENV)/bin/mnas search experiments/quickstart.yaml $(SEARCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
