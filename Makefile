# The two set-up commands of the README: `make demo` and `make test`.
# Everything they need is installed by these targets on a fresh machine.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# pytest-xdist workers for the suite. The cluster tests mostly wait on real pods, so each worker
# brings up a local cluster of its own (its own slot) and the waits overlap; loadfile keeps a
# file's module-scoped operator on one worker. 1 runs everything in this process. 4 on 2 cores: with
# the seeded nodes a worker's cluster is cheap, and the suite took 1,004 s against 1,130 s on 3 (2026-12-07).
TEST_WORKERS ?= 4
PYTEST_WORKERS := $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,)

.PHONY: setup demo test unit lint crd manifests image-check image cluster-binaries browser e2e clean

# uv installs the dependencies from its cache (hard links) in about 15 s where pip took a minute on every
# fresh clone; UV_NATIVE_TLS: the system's certificate store, as this machine's pip uses.
UV_CACHE_DIR ?= $(HOME)/.cache/kubetune/uv
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'uv>=0.4'
	UV_CACHE_DIR=$(UV_CACHE_DIR) UV_NATIVE_TLS=1 $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

## Run the example tuning job on this machine, no cluster needed.
demo: setup
	$(BIN)/kubetune run manifests/examples/random.yaml

## Lint, type-check, check the layers, build the local cluster and the image, run every test.
## The slowest tests are listed at the end: CI's time is a target (e2e/README.md, "Time").
test: setup lint cluster-binaries image browser
	$(BIN)/python -m pytest $(PYTEST_WORKERS) --durations=30

## The cluster tests only: on the local cluster, or with KUBETUNE_E2E_KUBECONFIG=path (and
## KUBETUNE_E2E_IMAGE=image) on that cluster instead, kind or any (e2e/kind.sh does this).
e2e: setup cluster-binaries
	@if [ -z "$$KUBETUNE_E2E_KUBECONFIG" ]; then $(MAKE) image; fi
	@# One shared external cluster runs one operator at a time: workers only on local clusters.
	$(BIN)/python -m pytest -m cluster $(if $(KUBETUNE_E2E_KUBECONFIG),,$(PYTEST_WORKERS)) tests/cluster

## Unit tests only (no cluster).
unit: setup
	$(BIN)/python -m pytest tests/unit

lint: setup
	$(BIN)/ruff check operator tests bench e2e charts
	$(BIN)/ruff format --check operator
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) image-check

## The Dockerfile is hadolint-clean and its pinned requirements install into a clean venv (no Docker here).
image-check: setup
	HADOLINT=$(BIN)/hadolint PYTHON=$(PYTHON) bash operator/check-image.sh

## The image with buildah, no Docker or registry: localhost/kubetune:dev, also as ~/.cache/kubetune/images/kubetune-dev.tar.
image:
	bash operator/build-image.sh

crd: setup
	$(BIN)/kubetune crd -o crds/hyperparametertuningjobs.kubetune.io.yaml
	cp crds/hyperparametertuningjobs.kubetune.io.yaml charts/kubetune/crds/

## manifests/install.yaml from the chart with its default values (needs helm: bash e2e/build.sh).
manifests: setup cluster-binaries
	$(BIN)/python charts/render_install.py

## Headless Chromium (Debian's package) for the report's browser test, tests/browser/.
browser:
	bash tests/browser/install-chromium.sh

cluster-binaries:
	@if [ -f e2e/build.sh ]; then bash e2e/build.sh; fi

clean:
	rm -rf $(VENV) .kubetune kubetune-result-*.json
