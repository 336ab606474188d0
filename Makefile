# Set-up is idempotent: a second `make test` or `make demo` reinstalls nothing (stamp file keyed on pyproject.toml).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo demo-full test bench clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing mr2probe and its pinned stack into $(VENV) (first time: a few minutes, ~6 GB of CUDA wheels that also run on CPU)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v 'is ignored: it is neither' || true
	@$(PY) -c "import probe, feature_cache, app, torch, timm, open_clip, h5py" || { echo "Installation failed, see the pip output above."; exit 1; }
	@touch $(STAMP)

# Debian packages some features need: Fashion-MNIST (a second real data set) and Chromium (dashboard browser test).
system-deps:
	@bash scripts/system-deps.sh

demo: install
	@bash scripts/system-deps.sh --optional dataset-fashion-mnist
	$(VENV)/bin/mr2probe demo

demo-full: install
	@bash scripts/system-deps.sh --optional dataset-fashion-mnist
	$(VENV)/bin/mr2probe demo --full

test: install
	@bash scripts/system-deps.sh --optional dataset-fashion-mnist chromium chromium-driver
	$(PY) -m pytest -q

bench: install
	$(PY) bench/probe_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
