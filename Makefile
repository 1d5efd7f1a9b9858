# fairshift: the commands a developer and CI run. `make help` lists them.
PYTHON ?= python3
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: help install test unit lint instrument-check crds crds-check e2e chart rbac-probe docker-lint docker-test bench bench-quick bench-scale-quick bench-guard-quick demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## install fairshift and fairshift-instrument (./instrument) with the test tools (editable)
	$(PYTHON) -m pip install -q -e ./instrument -e '.[test]'

test: lint unit  ## the whole cluster-free suite: lint, types, layers, unit and property tests

unit:  ## unit, property-based and simulation tests (no cluster)
	$(PYTHON) -m pytest tests instrument/tests e2e/test_dataplane.py -q

lint:  ## ruff, strict mypy, import-linter layer contracts, CRD freshness
	$(PYTHON) -m ruff check operator instrument tests e2e bench charts
	$(PYTHON) -m ruff format --check operator instrument tests e2e bench charts
	$(PYTHON) -m mypy
	lint-imports
	$(MAKE) --no-print-directory crds-check

instrument-check:  ## fairshift-instrument in a fresh virtual environment: no operator dependencies
	bash instrument/check_isolated.sh

crds:  ## render crds/ from the API models and copy it into the chart
	fairshift crd -o crds/modelrollouts.yaml
	cp crds/modelrollouts.yaml charts/fairshift/crds/modelrollouts.yaml

crds-check:  ## fail when crds/ or the chart's copy is stale
	@fairshift crd | cmp -s - crds/modelrollouts.yaml || { echo "crds/ is stale: make crds"; exit 1; }
	@cmp -s crds/modelrollouts.yaml charts/fairshift/crds/modelrollouts.yaml || { echo "chart CRD is stale: make crds"; exit 1; }

e2e:  ## the end-to-end suite on a real local control plane and Prometheus (builds once)
	bash e2e/run.sh

chart:  ## helm lint and helm template in every configuration, RBAC without wildcards
	bash charts/lint.sh

rbac-probe:  ## the chart's RBAC against a real kube-apiserver (after make e2e has built it)
	bash charts/rbac-probe.sh

docker-lint:  ## hadolint on the Dockerfile
	bash docker/lint.sh

docker-test:  ## the image's install steps in a fresh virtual environment
	bash docker/test_install.sh

bench:  ## decision quality against the peers' rules (writes docs/benchmarks.md)
	$(PYTHON) -m bench.decisions

bench-quick:  ## a few seeds of the decision benchmark (CI smoke, not a timed test)
	$(PYTHON) -m bench.decisions --quick

bench-guard-quick:  ## a fair model and a few drifts through the continuous guard (CI smoke)
	$(PYTHON) -m bench.guard --quick

bench-scale-quick:  ## a few rollouts on the real control plane (CI smoke, not a timed test)
	$(PYTHON) -m bench.scale --quick

demo:  ## a local cluster, Prometheus, simulated traffic and a biased model rolled back, live
	$(PYTHON) -m e2e.demo $(DEMO_ARGS)
