# Two entry points: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
OUT ?= demo-out

.PHONY: setup data browser lint demo test bench clean

setup: $(VENV)/.installed

# torch is pinned to builds that install offline here (CPU-only use; see README).
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e '.[clip,data,test]'
	touch $@

# Full Fashion-MNIST from Debian (needs root or sudo); everything else ships with pip packages.
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q dataset-fashion-mnist >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
	  elif command -v sudo >/dev/null; then sudo apt-get install -y -q dataset-fashion-mnist >/dev/null; \
	  else echo "note: cannot install dataset-fashion-mnist (not root); Fashion-MNIST tests will skip"; fi; \
	fi

# Headless Chromium for the browser test of `probe report` (the test skips, with the reason, where it is missing).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || echo "note: cannot install chromium; the browser test will skip"; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n apt-get install -y -q chromium >/dev/null || echo "note: cannot install chromium; the browser test will skip"; \
	  else echo "note: cannot install chromium (not root); the browser test will skip"; fi; \
	fi

# ruff (pyflakes, isort, pyupgrade, bugbear) and pyright (basic): zero findings.
lint: setup
	$(VENV)/bin/ruff check probe tests benchmarks
	$(VENV)/bin/pyright probe tests

demo: setup data
	$(VENV)/bin/probe demo --out $(OUT)

test: setup data browser lint
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup data
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
