# Two commands: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use: PostgreSQL server binaries (state store), WordNet 3.0 (ontology loader),
# Chromium (Playwright browser tests; never `playwright install`).
SYSTEM_PACKAGES := postgresql wordnet-base chromium chromium-driver
# Label Studio (the human-review server the tests start) lives in its own venv: its pins clash with ours.
LS_VENV := .venv-labelstudio
LS_VERSION := 1.23.2

.PHONY: setup system labelstudio test demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

system:
	bash scripts/install-system.sh $(SYSTEM_PACKAGES)

labelstudio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q label-studio==$(LS_VERSION)
	touch $@

test: setup system labelstudio
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -p no:cacheprovider

demo: setup
	$(BIN)/sam3-engine demo

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache build *.egg-info
