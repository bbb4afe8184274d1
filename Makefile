# rerankd: `make serve` runs the server, `make test` runs the whole suite. Both install first.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch on this kind of machine; override for a CUDA machine (TORCH_SPEC=torch).
TORCH_SPEC ?= torch==2.13.0
MODEL ?= Qwen/Qwen3-Reranker-0.6B
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install test serve lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $@

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

serve: install
	$(VENV)/bin/rerankd serve --model "$(MODEL)" --host $(HOST) --port $(PORT)

bench: install
	$(VENV)/bin/rerankd bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
