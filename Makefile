# Set-up is idempotent: a second `make test` or `make demo` reinstalls nothing (stamp file keyed on pyproject.toml).
PYTHON ?= python3
PORT   ?= 8000
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo demo-full test bench clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing mr2probe and its pinned stack into $(VENV) (first time: a few minutes, ~6 GB of CUDA wheels that also run on CPU)..."
	@# One line per package as pip goes (the CUDA wheels take minutes), not minutes of silence.
	@PYTHONUNBUFFERED=1 $(PY) -m pip install --disable-pip-version-check -e '.[dev]' 2>&1 \
		| grep --line-buffered -E '^(Collecting|Downloading|Installing collected|Successfully installed|ERROR)' \
		| cut -c1-110 || true
	@$(PY) -c "import probe, feature_cache, app, torch, timm, open_clip, h5py" || { echo "Installation failed, see the pip output above."; exit 1; }
	@touch $(STAMP)

# Debian packages some features need: Fashion-MNIST (a second real data set) and Chromium (dashboard browser test).
system-deps:
	@bash scripts/system-deps.sh

demo: install
	@bash scripts/system-deps.sh --optional dataset-fashion-mnist
	$(VENV)/bin/mr2probe demo --port $(PORT)

demo-full: install
	@bash scripts/system-deps.sh --optional dataset-fashion-mnist
	$(VENV)/bin/mr2probe demo --full --port $(PORT)

test: install
	@bash scripts/system-deps.sh --optional dataset-fashion-mnist chromium chromium-driver
	$(PY) -m pytest -q

bench: install
	$(PY) bench/probe_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
