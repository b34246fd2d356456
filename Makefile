# istio-operator: the two front-door commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
K8S_BINARIES := tools/build-k8s-binaries.sh
ISTIO_CHARTS := tools/build-istio-charts.sh

.PHONY: install k8s-binaries istio-charts demo test test-unit test-cluster lint typecheck layers check crds snapshots clean

# The package in .venv/ and the chart catalogue of Istio's own charts (istiod family).
# The package's bytecode is written ahead: where PYTHONDONTWRITEBYTECODE is set, every
# command would otherwise compile its modules at each start.
install: $(BIN)/istio-operator istio-charts
	$(BIN)/python -m compileall -q src

$(BIN)/istio-operator: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Rewrites requirements.lock from pyproject.toml (needs uv on PATH).
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--universal --quiet -o requirements.lock

k8s-binaries:
	bash $(K8S_BINARIES)

# Istio's own charts for the istiod-era versions, from the istio.io/istio Go module.
istio-charts:
	bash $(ISTIO_CHARTS)

demo: install k8s-binaries
	$(BIN)/istio-operator demo

test: install k8s-binaries
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

check: lint typecheck layers

crds: install
	$(BIN)/istio-operator crds --output-dir deploy/crds
	cp deploy/crds/istio.banzaicloud.io_*.yaml deploy/charts/istio-operator/crds/

snapshots: install
	$(BIN)/pytest tests/unit --snapshot-update

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Installs the operator (CRDs, RBAC, Deployment in namespace istio-operator) into the
# cluster KUBECONFIG points at. Another image: an overlay with `images:` over deploy/base.
deploy:
	kubectl apply --server-side -k deploy/base

# Lints the Helm chart with the helm that `make k8s-binaries` builds (HELM overrides it).
HELM ?= $(shell $(BIN)/python -c 'from istio_operator.localcluster.binaries import default_cache_dir; print(default_cache_dir() / "helm")' 2>/dev/null || echo helm)
helm-lint:
	$(HELM) lint --strict deploy/charts/istio-operator

.PHONY: deploy helm-lint

# Regenerates docs/configuration.md (the configuration reference) from the models.
docs: install
	$(BIN)/istio-operator docs --output docs/configuration.md

.PHONY: docs
