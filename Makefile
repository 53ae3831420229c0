# torchrec_nas: every target creates .venv first when it is missing (scripts/setup_env.sh picks
# the FBGEMM build for this host), then runs.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= runs/demo
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test lint typecheck unit bench clean

setup: $(VENV)/.ready

$(VENV)/.ready: scripts/setup_env.sh pyproject.toml
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

demo: setup
	$(VENV)/bin/torchrec-nas demo --config configs/demo.yaml --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check torchrec_nas tests examples
	$(VENV)/bin/ruff format --check torchrec_nas tests examples

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest tests

test: lint typecheck unit

bench: setup
	$(VENV)/bin/torchrec-nas bench --config configs/demo.yaml --out runs/bench

clean:
	rm -rf runs .mypy_cache .ruff_cache
