# The front door. Every target sets up its own virtual environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test test-unit test-integration soak lint format validate bench clean

$(STAMP): requirements-dev.txt layers/common/requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## demo: start the local stack, upscale the sample images, print the results table
demo: $(STAMP)
	$(BIN)/python -m local demo

## up: run the local stack in the foreground
up: $(STAMP)
	$(BIN)/python -m local up

## test: lint, then every test; the stack-based suites run in their own processes, since the
## unit tests' in-process AWS mocks must never share a process with a running local stack
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests/unit tests/template
	$(BIN)/python -m pytest tests/integration
	$(BIN)/python -m pytest tests/reliability

## soak: the reliability suite at full size
soak: $(STAMP)
	RELIABILITY_SCALE=soak $(BIN)/python -m pytest tests/reliability -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## validate: sam validate --lint, cfn-lint, checkov and sam build (tools in their own venv)
validate:
	bash scripts/validate

## bench: benchmarks against baselines, report in benchmarks/results/latest.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .venv-tools .aws-sam out .pytest_cache .ruff_cache
