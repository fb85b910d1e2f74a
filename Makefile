# The two commands a newcomer needs (see README.md):
#   make book   install everything, execute every chapter, build the HTML book
#   make test   install everything, run the unit tests, execute and check every chapter,
#               build the book and check it in a real browser
#   make test-fast  the unit tests alone (no chapters, no browser, no JupyterLab): minutes
#   make fuzz       the property tests with many fresh examples (make test derandomises them)
#   make gpu-check  on a CUDA machine: the CUDA tests and the full profile's GPU timings, as
#               JSON in $OUT (default artifacts/gpu); GPU_CHECK_ARGS=--tiny checks it on a CPU
# Both are idempotent; `make setup` alone only installs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lsnotes-installed

.PHONY: setup book test test-fast fuzz gpu-check clean

$(STAMP): requirements.txt pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

book: setup
	$(BIN)/lsnotes build-book --profile quick

test: setup
	$(BIN)/python -m pytest tests

# Tests that execute chapters or drive a browser carry the pytest markers `chapters`/`browser`.
test-fast: setup
	$(BIN)/python -m pytest tests -m "not chapters and not browser"

# Property tests explore: fresh examples, 40x as many (make test runs them derandomised).
fuzz: setup
	LSNOTES_FUZZ=1 $(BIN)/python -m pytest tests -m hypothesis

gpu-check: setup
	$(BIN)/python -m benchmarks.gpu_check $(GPU_CHECK_ARGS)

clean:
	rm -rf _build
