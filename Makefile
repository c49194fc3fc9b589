# stylegan-jax developer commands. `make test` works on a bare machine with Python 3.11 + pip.
# The metrics-test extra brings CPU PyTorch for the FID/LPIPS parity tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# libtpu (the XLA:TPU compiler, for `stylegan-jax tpu-compile`) lives beside the venv, off its
# import path, so that CPU runs never load it; the version is the one jax[tpu] pins.
LIBTPU := $(VENV)/libtpu/.installed

.PHONY: install tpu-tools test test-quick lint train

install: $(STAMP)

tpu-tools: $(LIBTPU)

$(LIBTPU): $(STAMP)
	$(PY) -m pip install --no-deps --upgrade --target $(VENV)/libtpu "$$($(PY) -c "from importlib.metadata \
		import requires; print(next(r.split(';')[0] for r in requires('jax') if r.startswith('libtpu')))")"
	touch $(LIBTPU)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test,metrics-test]'
	touch $(STAMP)

# The whole suite (the README's test command; .ci/run runs it after `make lint`).
test: install tpu-tools
	$(PY) -m pytest -q --durations=15

# The fast loop: everything but the tests marked slow (training runs, subprocesses, PyTorch
# parity). `make test` measured 2026-12-07 on a 2-vCPU machine of the CI kind, idle: 452
# tests in 10 min 29 s (16 min 42 s the hour before, until the iteration's finiteness check
# stopped being copied into every Adam fusion; the bench-suite smoke is 75 s of it).
# 2026-12-08: 466 tests in 42 min 19 s on the same kind of machine, not idle (XLA:TPU
# compiles of the 1024 programs ran beside it); the two TPU-topology compiles of the digits
# iteration took 138 s and 88 s of it.
test-quick: install tpu-tools
	$(PY) -m pytest -q -m "not slow" --durations=15

lint: install
	$(VENV)/bin/ruff check src tests experiments docs/studies

# The README's main command: the bundled digits demo, end to end (resumes if interrupted).
train: install
	test -d data/digits/32 || $(VENV)/bin/stylegan-jax prepare --dataset digits --data_dir data
	$(VENV)/bin/stylegan-jax train --config experiments/digits.py --workdir runs/digits
