# Two entry points do all the set-up on a fresh machine (see README):
#   make tiny   the main job: configs/tiny.yaml end to end, report in runs/tiny/report.md
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: tiny test micro clean

$(BIN)/r1: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

tiny: $(BIN)/r1
	$(BIN)/r1 run configs/tiny.yaml

micro: $(BIN)/r1
	$(BIN)/r1 run configs/micro.yaml

test: $(BIN)/r1
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs
