# llmlab.cluster — developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.requirements-$(shell sha256sum requirements-dev.txt | cut -c1-12)
LINK      := .collections/ansible_collections/llmlab/cluster
INVENTORY ?= inventories/lab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv plan test lint unit integration build calibration-table clean

help:  ## this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.requirements-* && touch $@

$(LINK):
	mkdir -p $(dir $(LINK)) && ln -sfn ../../.. $(LINK)

venv: $(STAMP) $(LINK)  ## install the pinned tools into .venv and link the collection

plan: venv  ## print the plan for INVENTORY (default inventories/lab) and write it to its artifacts/plan.json
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/plan.yml

test: venv lint unit integration  ## everything CI runs: lint, unit tests with the calibration table, integration

lint: venv  ## yamllint, ansible-lint (profile production), mypy over the planner
	$(BIN)/yamllint -s .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --offline
	$(BIN)/mypy --config-file mypy.ini -p ansible_collections.llmlab.cluster.plugins.module_utils \
		-p ansible_collections.llmlab.cluster.plugins.plugin_utils -p ansible_collections.llmlab.cluster.plugins.filter

unit: venv  ## unit and property tests of topology and planner, with the calibration benchmark printed
	$(BIN)/pytest -q tests/unit

integration: venv  ## the built collection installs and its modules, filters and plan playbook run
	$(BIN)/pytest -q tests/integration

build: venv  ## ansible-galaxy collection build into build/
	$(BIN)/ansible-galaxy collection build --force --output-path build .

calibration-table: venv  ## print the planner's calibration table for the README
	@$(PY) -c 'import sys; sys.path.insert(0, ".collections"); \
	from ansible_collections.llmlab.cluster.plugins.module_utils import calibration as c; \
	print(c.markdown_table(c.score()))'

clean:  ## remove the venv, builds and caches
	rm -rf $(VENV) .collections build .pytest_cache .mypy_cache inventories/*/artifacts
