# The README's two commands are `make demo` and `make test`; everything else is a part.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# The checkout is importable as ansible_collections/elms/queue_workers through this link.
COLLECTIONS := $(CURDIR)/.build/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/elms/queue_workers
SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
SCENARIO ?=

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0

.PHONY: help venv collection docker images lint unit sanity molecule test bench demo demo-clean clean

help:
	@echo "make demo      deploy the workers into a throwaway Debian 12 container (elms-demo) and encode a video"
	@echo "make test      lint + sanity (ansible-test sanity and units) + every molecule scenario (what CI runs)"
	@echo "make bench     measure the deploy (no-change cost, fleet, disruption, responsiveness under encoding)"
	@echo "make lint | unit | sanity | molecule [SCENARIO=name] | demo-clean | clean"

$(VENV)/.installed: requirements-dev.txt
	bash tests/harness/host-packages.sh
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

collection: venv $(COLLECTION_LINK)

docker:
	bash tests/harness/ensure-docker.sh

images: docker
	python3 tests/harness/images.py debian12-php debian12-app debian13-php debian13-controller

lint: collection
	yamllint --strict .
	ansible-lint --offline --profile production

unit: collection
	cd $(COLLECTION_LINK) && python -m pytest -q tests/unit

# ansible-test sanity and units, the way Galaxy's collections are checked (empty ignore files).
sanity: collection
	bash tests/harness/ansible-test.sh

molecule: collection images
	bash tests/harness/run-scenarios.sh $(if $(SCENARIO),$(SCENARIO),$(SCENARIOS))

# The images (debootstrap, apt) are built while lint and sanity keep the CPU busy: on a
# fresh machine that overlaps several minutes of waiting on the mirror. The unit tests run
# once, under ansible-test units (make sanity), as Galaxy runs them; make unit is the
# quicker way to run them while working.
test: collection
	@mkdir -p .build
	@$(MAKE) --no-print-directory images >.build/images.log 2>&1 & images=$$!; \
	$(MAKE) --no-print-directory lint sanity; checks=$$?; \
	if ! wait $$images; then echo "make images failed:"; tail -40 .build/images.log; exit 1; fi; \
	[ $$checks -eq 0 ] && $(MAKE) --no-print-directory molecule

# Measures the deploy's cost, disruption and the server's responsiveness; prints a table
# and writes it to .build/bench/results.md. Not part of make test (it measures, never asserts).
bench: collection images
	python tests/benchmarks/bench.py

# The whole time is printed at the end: on a first run it includes what the prerequisites
# installed and built (Docker's engine, debootstrap, the venv, the images).
demo:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory collection docker && python3 tests/harness/images.py debian12-php \
	  && bash tests/harness/demo.sh; rc=$$?; \
	echo "make demo took $$(( $$(date +%s) - start )) s in all (exit $$rc)"; exit $$rc

demo-clean:
	docker rm -f elms-demo

clean:
	rm -rf .build $(VENV) .pytest_cache
