# `make run` installs the agent into .venv and runs it on agent.yaml.
# `make test` installs what the tests need (Debian peers, the test extras) and runs the whole
# suite with the linters. CI runs `make test` (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit integration peers clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

peers:
	scripts/install-test-peers

run: $(VENV)/.installed
	$(BIN)/opswatch run -c agent.yaml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check agent collector remediation exporters runbooks tests bench
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/pytest tests/unit -q

integration: $(VENV)/.installed-test peers
	$(BIN)/pytest tests/integration -q

test: peers $(VENV)/.installed-test lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
