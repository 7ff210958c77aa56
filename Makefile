# apprelease entry points. `make demo` and `make test` work from a fresh clone: they install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
TESTBED   := .testbed
APT_PKGS  := docker.io docker-registry skopeo busybox-static debootstrap apache2-utils openssl curl git \
             runc containernetworking-plugins iptables iproute2 gcc libc6-dev
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE     ?= apprelease/operator

.PHONY: help deps venv lint unit test testbed-up testbed-down run demo image bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install the system packages the test bed needs (Debian/Ubuntu, as root)
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v go >/dev/null || { echo "Go >= 1.26 is needed to build the test bed (https://go.dev/dl)"; exit 1; }

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## the virtualenv with apprelease and its dev tools

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check operator tests e2e
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tests e2e

unit: venv ## unit tests only (no cluster)
	$(VENV)/bin/pytest tests -q

test: deps venv lint testbed-up ## install everything, then run every test: unit, integration, e2e
	$(VENV)/bin/pytest -ra tests e2e

testbed-up: deps ## start the local control plane, registries, Docker engine and a real node; writes .testbed/env
	e2e/testbed/up.sh

testbed-down: ## stop everything testbed-up started
	e2e/testbed/down.sh

run: venv ## run the operator against the current KUBECONFIG (on the test bed: with its registry settings)
	@if [ -f $(TESTBED)/env ] && [ -z "$$KUBECONFIG" ]; then set -a; . $(TESTBED)/env; set +a; \
	  export APPRELEASE_INSECURE_REGISTRIES=$$REGISTRY APPRELEASE_CA_BUNDLE=$$REGISTRY_AUTH_CA; fi; \
	exec $(VENV)/bin/apprelease run

demo: deps venv testbed-up ## the whole story on the test bed: bake, release, upgrade, roll back, history, promote, notify
	$(PY) -m e2e.demo

image: venv ## the operator's production image, tagged with `git describe`
	e2e/image.sh $(IMAGE) $(VERSION)

bench: deps venv testbed-up ## the event intake (pure Python), then reconcile latency and operator memory on the test bed; what verification costs; promotion after a soak; 1,000 and 10,000 AppReleases
	$(PY) -m e2e.bench
	$(PY) -m e2e.bench_trust
	$(PY) -m e2e.bench_promotion
	$(PY) -m e2e.bench_scale

clean: testbed-down
	rm -rf $(TESTBED) $(VENV)
