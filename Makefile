# rerankd: `make serve` runs the server, `make test` runs the whole suite. Both install first.
VENV ?= .venv
PY := $(VENV)/bin/python
# Which torch build: cpu (PyTorch's CPU wheel index: ~200 MB instead of the CUDA build's multi-GB),
# cuda (the CUDA build from the Python package index), or auto: cuda when nvidia-smi sees a GPU, else cpu.
TORCH ?= auto
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Seconds to wait for the CPU index before going on without it (a machine with a local wheel store).
INDEX_PROBE_TIMEOUT ?= 5
# What `make install` puts in .venv: every extra and the dev tools; EXTRAS=local is the light path to a
# first ranking (torch + transformers, no server), EXTRAS=server for `rerankd serve`.
EXTRAS ?= all,dev
MODEL ?= Qwen/Qwen3-Reranker-0.6B
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# One stamp per EXTRAS, so that `make serve` after `make install EXTRAS=local` adds the rest.
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install test serve smoke lint bench clean torch-args

install: $(STAMP)

# The pip arguments that pick the torch build (shell code, printed by `make -s torch-args`). The CPU index
# is probed first: when it cannot be reached (no network beyond a local mirror), the install goes on with
# the configured index instead of stalling on retries, and says so.
TORCH_ARGS = kind="$(TORCH)"; \
	if [ "$$kind" = auto ]; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then kind=cuda; else kind=cpu; fi; \
	fi; \
	case "$$kind" in \
	  cuda) ;; \
	  cpu) if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))' \
	          "$(TORCH_CPU_INDEX)/torch/" "$(INDEX_PROBE_TIMEOUT)" >/dev/null 2>&1; then \
	         echo "--extra-index-url $(TORCH_CPU_INDEX)"; \
	       else \
	         echo "note: $(TORCH_CPU_INDEX) is not reachable: $(TORCH_SPEC) comes from the configured index" >&2; \
	       fi ;; \
	  *) echo "TORCH must be auto, cpu or cuda, got '$$kind'" >&2; exit 2 ;; \
	esac

torch-args:
	@$(TORCH_ARGS)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	args="$$($(TORCH_ARGS))" || exit 2; $(PY) -m pip install -q $$args "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
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

# The whole stack offline, with the random-weight smoke-test model (NOT a real reranker).
smoke: install
	$(VENV)/bin/rerankd rank --model tiny-random --query "capital of China" \
	  "Beijing is the capital of China." "Gravity is a force."

bench: install
	$(VENV)/bin/rerankd bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
