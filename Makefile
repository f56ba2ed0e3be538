# Two commands: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use: PostgreSQL server binaries (state store), WordNet 3.0 (ontology loader).
SYSTEM_PACKAGES := postgresql wordnet-base

.PHONY: setup system test demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

system:
	bash scripts/install-system.sh $(SYSTEM_PACKAGES)

test: setup system
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -p no:cacheprovider

demo: setup
	$(BIN)/sam3-engine demo

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
