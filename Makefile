# The README's two commands: `make demo` and `make test`. Each sets itself up from nothing:
# Debian packages (installed when run as root, else the exact apt command is printed),
# a virtual environment in .venv with the pinned Python stack, then the job.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
APT_PACKAGES := gcc g++ make gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm \
                dataset-fashion-mnist clang libclang-rt-14-dev
# One file each package provides (globs allowed), checked to decide whether apt must run.
APT_PROBES   := /usr/bin/arm-none-eabi-gcc /usr/lib/arm-none-eabi/lib/libc.a /usr/bin/qemu-system-arm \
                /usr/lib/arm-none-eabi/newlib/thumb/v7e-m+fp/hard/libstdc++_nano.a \
                /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz /usr/bin/clang /usr/bin/g++ \
                /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a

.PHONY: demo test test-fast lint format setup system-deps python-deps clean

demo: setup
	$(VPY) -m tools demo

# The suite on the 2 cores with pytest-xdist; tests/conftest.py shares the trained bundles between the workers and
# the xdist_group marks keep together what must not be split (docs/architecture.md, "Suite time").
test: lint
	$(VPY) -m pytest -n 2 --dist loadgroup

# The developer's loop: the static checks and every test that neither trains a model nor boots QEMU
# (markers in pyproject.toml; see docs/architecture.md for the measured time). `make test` still runs all.
test-fast: lint
	$(VPY) -m pytest -m "not slow and not qemu"

# Static checks `make test` runs first (configured in pyproject.toml; .pre-commit-config.yaml runs the same):
# ruff's lint rules and Python layout (ruff format), the C/C++ layout (.clang-format), mypy, and the import layers
# of docs/architecture.md.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror --style=file $(C_SOURCES)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Format Python (ruff format) and the hand-written C/C++ (.clang-format); generated model sources are left alone.
C_SOURCES = $(shell git ls-files 'firmware/*.c' 'firmware/*.h' 'firmware/*.cpp' 'tests/c/*.c' 'tests/c/*.h' | grep -v '^firmware/src/model/')
format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i --style=file $(C_SOURCES)

setup: system-deps python-deps

system-deps:
	@missing=""; for f in $(APT_PROBES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	  else \
	    echo "error: missing$$missing; run: sudo apt-get update && sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	  fi; \
	fi

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -e '.[test,sweep]'
	touch $@

clean:
	rm -rf build runs .pytest_cache
