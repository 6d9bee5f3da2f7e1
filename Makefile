# `make test` installs what the tests need (Debian peers, a venv with the test extras) and runs
# the whole suite with the linters. `make run` installs the agent and runs it on agent.yaml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit integration peers venv clean

$(BIN)/opswatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/opswatch

peers:
	scripts/install-test-peers

run: venv
	$(BIN)/opswatch run -c agent.yaml

lint: venv
	$(BIN)/ruff check agent collector remediation exporters runbooks tests bench
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv peers
	$(BIN)/pytest tests/integration -q

test: peers venv lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
