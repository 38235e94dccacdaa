# Two commands for a newcomer: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export XLA_FLAGS ?= --xla_force_host_platform_device_count=8
export JAX_PLATFORMS ?= cpu
export TF_CPP_MIN_LOG_LEVEL ?= 3
PYTEST_ARGS ?=
# Two pytest workers (one per core of the reference machine; three were slower, and so was
# sending the end-to-end modules first: two of them at once contend more than one beside small
# tests). Work stealing: a worker that runs dry takes half of what the other has left, so both
# finish together (with whole modules per worker the last one, a single long end-to-end test,
# ran ~40 s alone; cold make test 9:30 -> 8:50 on the same tree). A module split between the
# workers builds its module-scoped fixtures on both.
XDIST ?= -n 2 --dist worksteal
# The tests compile the same tiny models in many processes (each trainer test is a subprocess):
# one JAX compilation cache for all of them compiles each program once per checkout. Results
# are unchanged (an executable read back is the one compiled); bench/compile.py switches it off.
TEST_JAX_CACHE := JAX_COMPILATION_CACHE_DIR=$(CURDIR)/.cache/jax-tests \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

.PHONY: install test test-slow test-flan-templates test-all demo bench bench-gpu clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/pip install --quiet -r requirements.txt
	# t5 pins stale nightlies that collide with seqio/tfds: its data and evaluation modules
	# need only what requirements.txt already lists.
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

test: install
	$(TEST_JAX_CACHE) $(BIN)/python -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS) tests

test-slow: install
	$(TEST_JAX_CACHE) $(BIN)/python -m pytest -q $(XDIST) -m slow $(PYTEST_ARGS) tests

# Every template of every FLAN 2021 dataset built end to end under TFDS mock data (minutes).
test-flan-templates: install
	$(TEST_JAX_CACHE) FLAN_TEST_ALL_TEMPLATES=1 $(BIN)/python -m pytest -q $(XDIST) -m all_templates $(PYTEST_ARGS) tests/tasks

test-all: install
	$(TEST_JAX_CACHE) $(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

demo: install
	$(BIN)/flan-jax demo

bench: install
	$(BIN)/flan-jax bench all

clean:
	rm -rf $(VENV) build *.egg-info .cache

# The accelerator suite on a machine without TensorFlow, gin-config or network: the pure-Python
# wheels kept in bench/wheels/ are installed into a temporary folder on PYTHONPATH, never into
# the machine's Python. Each section runs in its own process (XLA_PYTHON_CLIENT_MEM_FRACTION=0.9
# unless set) within a 400 s budget (BENCH_ARGS="--budget_s N" changes it), so the target ends
# within 8 minutes. Writes bench/results/<gpu>.json, .md and .profile.md (the costliest ops).
bench-gpu:
	tmp=$$(mktemp -d) && $(PYTHON) -m pip install --quiet --no-index --no-deps --target $$tmp \
		bench/wheels/*.whl && PYTHONPATH=$$tmp:$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} \
		XLA_FLAGS="--xla_gpu_enable_latency_hiding_scheduler=true" JAX_PLATFORMS= \
		$(PYTHON) -m flan_jax.cli bench gpu $(BENCH_ARGS); status=$$?; rm -rf $$tmp; exit $$status
