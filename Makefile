# palier — two commands on a fresh machine:
#   make demo   set up, start Prefect + MLflow, run the demo pipeline through its deployment:
#               whisper-base, new speakers -> medical dictation (pipelines/demo-base.yaml)
#   make demo-nano  the same plan on the nano model (pipelines/demo.yaml)
#   make demo-real  seed 001 on real whisper-base, one stage + CT2 export (pipelines/medical-base.yaml)
#   make test   set up and run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STATE := .state

.PHONY: setup system-deps demo demo-nano demo-real test test-fast bench bench-gpu up down clean-state

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@command -v espeak-ng >/dev/null && command -v ffmpeg >/dev/null || { \
	  echo "installing espeak-ng (speaks the demo's French sentences) and ffmpeg (decodes audio sent to a served ASR model)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq espeak-ng >/dev/null && sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; fi; }

setup: system-deps $(VENV)/.installed

up: setup
	$(VENV)/bin/palier up

down:
	-$(VENV)/bin/palier down

demo: setup
	@bash scripts/demo.sh

demo-nano: setup
	@bash scripts/demo.sh demo

# Seed 001 on real whisper-base (pipelines/medical-base.yaml): ~8 minutes on an idle 2-core CPU.
demo-real: setup
	@bash scripts/demo.sh medical-base

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not e2e and not integration"

bench: setup
	$(PY) -m bench
	$(PY) -m bench --model whisper-base --only eval --eval-count 32 --prep-count 32 --threads 2 --name whisper-base
	$(PY) -m bench.demo_time

# On a machine with a GPU: evaluation and training-step figures, seed 000 projections (a few minutes).
bench-gpu: setup
	bash bench/gpu.sh

clean-state: down
	rm -rf $(STATE)
