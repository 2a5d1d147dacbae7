# The front door. Every target sets up its own virtual environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up screenshots test soak lint format validate bench clean lock

UV := $(BIN)/uv
LOCK_FLAGS := --quiet --generate-hashes

# Installs only from lock files with hashes: uv from requirements-bootstrap.lock (by pip), then
# everything else from requirements-dev.lock (by uv), then this project itself (the s3-upscale command).
$(STAMP): requirements-bootstrap.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-bootstrap.lock
	@$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	@$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## lock: recompile the lock files (with hashes) from the pins in the .txt / .in files
lock: $(STAMP)
	$(UV) pip compile $(LOCK_FLAGS) --universal --python-version 3.11 requirements-bootstrap.txt -o requirements-bootstrap.lock
	$(UV) pip compile $(LOCK_FLAGS) --universal --python-version 3.11 requirements-dev.txt -o requirements-dev.lock
	$(UV) pip compile $(LOCK_FLAGS) --python-version 3.13 --python-platform aarch64-manylinux_2_28 \
		layers/common/requirements.in -o layers/common/requirements.txt

## demo: start the local stack, upscale the sample images, print the results table
demo: $(STAMP)
	$(BIN)/python -m local demo $(if $(PRESETS),--presets $(PRESETS))

## up: run the local stack in the foreground (FAULT=outage|401|402 starts it with that Runware fault; PRESETS=file.json its folder presets)
up: $(STAMP)
	$(BIN)/python -m local up $(if $(FAULT),--fault $(FAULT)) $(if $(PRESETS),--presets $(PRESETS))

## screenshots: the pictures in README.md (docs/images/*.png), taken of the local stack by headless Chromium
screenshots: $(STAMP)
	$(BIN)/python -m local.screenshots

## test: lint, then every test; the stack-based suites run in their own processes, since the
## unit tests' in-process AWS mocks must never share a process with a running local stack
# Each stack-based suite runs in STACK_TEST_WORKERS processes (pytest-xdist), each with a local stack
# of its own. Their tests mostly wait on their stacks, so three share two cores well: on two cores,
# integration takes 4 min 10 s with three and 5 min 37 s with two, reliability 5 min 51 s and 7 min 46 s.
# Their conftest.py files start the longest test first and keep a module with a costly module-scoped
# fixture on one worker. STACK_TEST_WORKERS=0 runs a suite in one process.
# The unit and template tests use the CPU: one process per core (UNIT_TEST_WORKERS=0: one process).
STACK_TEST_WORKERS ?= 3
STACK_TEST_OPTIONS := -n $(STACK_TEST_WORKERS) --dist loadgroup
UNIT_TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests/unit tests/template -n $(UNIT_TEST_WORKERS)
	$(BIN)/python -m pytest tests/integration $(STACK_TEST_OPTIONS)
	$(BIN)/python -m pytest tests/reliability $(STACK_TEST_OPTIONS)

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
validate: $(STAMP)
	bash scripts/validate

## bench: benchmarks against baselines, report in benchmarks/results/latest.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .venv-tools .aws-sam out .pytest_cache .ruff_cache
