# su_notes — two entry points do all set-up on a fresh machine:
#   make docs   execute every notebook and render the documentation site into _docs/
#   make test   hygiene checks, nbdev_test on every notebook, the site build (without slow cells), pytest tests/
# .ci/run adds `make test-portable` (the notebook asserts and pytest again under numerically different CPU
# configurations) and `make test-install` (pip install . into a clean venv, then import every public name).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TORCH ?= torch==2.13.0
NPROC ?= 2
# Notebooks run NPROC at a time; one torch thread each, so parallel notebooks do not oversubscribe the cores.
NB_ENV ?= OMP_NUM_THREADS=1
# Peer libraries the tests compare against whose top-level __init__ needs torchvision (no build for the CPU torch
# wheel): installed without their dependencies; tests/peers.py loads the torch-only submodules directly.
PEERS_NODEPS ?= LibMTL==1.1.5 lightly==1.6.0

.PHONY: install export clean-nbs check docs docs-quick readme nbtest pytest test browser bench test-portable \
        test-install
# inductor's on-disk cache is not keyed on the CPU capability: code compiled under one ATEN_CPU_CAPABILITY and
# reloaded under another computes wrong results. Every test configuration gets its own cache directory.
INDUCTOR_CACHE := $(CURDIR)/.cache/inductor
export TORCHINDUCTOR_CACHE_DIR ?= $(INDUCTOR_CACHE)/native

# Virtualenv with pinned deps; rebuilt when the packaging files change.
$(VENV)/.installed: settings.ini setup.py Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(PEERS_NODEPS)
	touch $@
install: $(VENV)/.installed

export: install
	$(BIN)/nbdev_export

# Fails if exporting, cleaning or regenerating README.md would change any file: the package must be exactly
# what the notebooks export, notebooks must be committed clean (no outputs), README.md current with nbs/index.ipynb;
# then ruff's formatter and linter (pyproject.toml) over notebooks, tests, benchmarks and tools.
check: install
	@before=$$(git status --porcelain --untracked-files=all; git diff | sha1sum); \
	$(BIN)/nbdev_export; $(BIN)/nbdev_clean; $(PY) tools/build_docs.py --readme-only >/dev/null; \
	after=$$(git status --porcelain --untracked-files=all; git diff | sha1sum); \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev_export, nbdev_clean or the README build changed files:"; git status --porcelain; git --no-pager diff --stat; exit 1; \
	fi; echo "check: package matches notebooks; notebooks clean"
	$(BIN)/ruff format --check --quiet . && $(BIN)/ruff check --quiet . && echo "check: ruff format and lint clean"

docs: export
	$(NB_ENV) $(PY) tools/build_docs.py

readme: export
	$(PY) tools/build_docs.py --readme-only

nbtest: export
	$(NB_ENV) $(BIN)/nbdev_test --n_workers $(NPROC) --timing

# Headless Chromium for the site test (Debian package; the test drives it with Playwright).
browser:
	@{ command -v chromium >/dev/null && fc-list :lang=zh | grep -q .; } || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; }

pytest: install browser
	$(BIN)/pytest -q tests

# The test run builds the site without `#| slow` cells (those are the long experiments; `make docs` runs them).
docs-quick: export
	$(NB_ENV) $(PY) tools/build_docs.py --skip-slow

test: check nbtest docs-quick pytest

# The same asserts under numerically different but valid CPU configurations: BLAS kernels, vector widths and thread
# counts change the last bits of a result, and a tolerance that only holds on one of them fails on the next machine.
#   scalar: no vectorised ATen kernels, MKL's reproducible-results mode, one thread (inductor's C++ does not compile
#           under ATEN_CPU_CAPABILITY=default, so torch.compile tests skip there);
#   sse42:  AVX2 ATen kernels, MKL held to SSE4.2, two threads.
PORTABLE_CONFIGS ?= scalar sse42
PORTABLE_ENV_scalar := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PORTABLE_ENV_sse42 := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=SSE4_2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
PORTABLE_WORKERS_scalar := $(NPROC)
PORTABLE_WORKERS_sse42 := 1
test-portable: export
	@for c in $(PORTABLE_CONFIGS); do \
	  case $$c in scalar) e="$(PORTABLE_ENV_scalar)"; w=$(PORTABLE_WORKERS_scalar);; \
	              sse42) e="$(PORTABLE_ENV_sse42)"; w=$(PORTABLE_WORKERS_sse42);; \
	              *) echo "unknown configuration $$c"; exit 2;; esac; \
	  echo "== test-portable [$$c]: $$e"; \
	  env $$e TORCHINDUCTOR_CACHE_DIR=$(INDUCTOR_CACHE)/$$c SU_NOTES_TEST_CONFIG=$$c \
	    $(BIN)/nbdev_test --n_workers $$w; \
	  env $$e TORCHINDUCTOR_CACHE_DIR=$(INDUCTOR_CACHE)/$$c SU_NOTES_TEST_CONFIG=$$c \
	    $(BIN)/pytest -q -p no:cacheprovider tests --ignore=tests/test_site.py; \
	done

# `pip install .` into a clean venv holding only the declared dependencies, then import every public name.
test-install:
	python3 tools/check_install.py --torch "$(TORCH)"

bench: export
	$(PY) benchmarks/run_all.py
