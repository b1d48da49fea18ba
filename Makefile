# llmlab.cluster — developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.requirements-$(shell sha256sum requirements-dev.txt | cut -c1-12)
LINK      := .collections/ansible_collections/llmlab/cluster
VAULTPASS := .cache/simlab/vault-pass
INVENTORY ?= inventories/lab
TOPOLOGY  ?= ring
NODES     ?= 3
SHAPE     ?=
SIMLAB    := $(PY) -m tools.simlab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv demo plan test lint unit integration lab molecule molecule-vllm bench-vllm bench-dllama build size calibration-table variables-table clean \
	awx-surveys ee \
	lab-host sim-image sim-inputs sim-up sim-down sim-status sim-cut sim-restore sim-rename sim-replace sim-stop sim-start sim-kill

help:  ## this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.requirements-* && touch $@

$(LINK):
	mkdir -p $(dir $(LINK)) && ln -sfn ../../.. $(LINK)

$(VAULTPASS): | $(STAMP) $(LINK)
	$(PY) -c 'from tools.simlab.inputs import ensure_vault_pass; ensure_vault_pass()'

venv: $(STAMP) $(LINK) $(VAULTPASS)  ## install the pinned tools into .venv, link the collection, the lab's Vault password

demo: venv sim-up  ## the main job on the simulated lab: boot it, run site.yml, print the plan and the benchmark [BACKEND=name]
	$(if $(BACKEND),$(SIMLAB) backend-inputs $(BACKEND))
	$(BIN)/ansible-playbook -i inventories/sim site.yml $(if $(BACKEND),-e llmlab_backend=$(BACKEND))
	@$(PY) -m tools.demo_report inventories/sim

plan: venv  ## print the plan for INVENTORY (default inventories/lab) and write it to its artifacts/plan.json
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/plan.yml

test: venv lint unit integration lab molecule  ## everything CI runs: lint, unit, integration, the lab and Molecule

lint: venv  ## yamllint, ansible-lint (profile production), mypy over the planner
	$(BIN)/yamllint -s .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --offline
	$(BIN)/mypy --config-file mypy.ini -p ansible_collections.llmlab.cluster.plugins.module_utils \
		-p ansible_collections.llmlab.cluster.plugins.plugin_utils -p ansible_collections.llmlab.cluster.plugins.filter

unit: venv  ## unit and property tests of topology and planner, with the calibration benchmark printed
	$(BIN)/pytest -q tests/unit

integration: venv  ## the built collection installs and its modules, filters and plan playbook run
	$(BIN)/pytest -q tests/integration

lab: venv lab-host  ## the simulated lab's own tests: bring-up, SSH, cables, faults, clean teardown (root, docker)
	$(BIN)/pytest -q tests/lab

molecule: venv lab-host  ## every Molecule scenario on the simulated lab (vLLM's included: TP=2 direct, PP=3 ring)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test --all

molecule-vllm: venv lab-host  ## only vLLM's Molecule scenarios (TP=2 on 2 direct nodes; PP=3 on a ring of 3, with llama.cpp)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s vllm-direct -s vllm-ring3

bench-vllm: venv lab-host  ## vLLM TP=2, PP=3 and 1 node against llama.cpp RPC on the same lab nodes: the ratio table (~40 min) [REQUESTS=16]
	$(PY) -m tools.bench_compare --requests $(or $(REQUESTS),16)

bench-dllama: venv lab-host  ## distributed-llama on 1, 2 and 4 nodes of a 5GbE switch: the ratio table; needs LLMLAB_DLLAMA_ARCHIVE [REQUESTS=8]
	@test -n "$$LLMLAB_DLLAMA_ARCHIVE" || { echo "bench-dllama: set LLMLAB_DLLAMA_ARCHIVE to the distributed-llama release archive (DEVELOPERS.md)"; exit 2; }
	$(PY) -m tools.bench_compare --cases inventories/bench-dllama.yml --requests $(or $(REQUESTS),8)

lab-host:  ## install docker.io/debootstrap when missing and start dockerd (root)
	tools/lab-host.sh

sim-image: venv lab-host  ## build the lab's node image (only when its recipe changed)
	$(SIMLAB) image

sim-inputs: venv lab-host  ## what the lab needs to run BACKEND besides its nodes (vLLM: its image), once per recipe
	$(SIMLAB) backend-inputs $(BACKEND)

sim-up: venv lab-host  ## boot a lab: make sim-up TOPOLOGY=ring|direct|switch NODES=3 [SHAPE=eth_5g]
	$(SIMLAB) up --topology $(TOPOLOGY) --nodes $(NODES) $(if $(SHAPE),--shape $(SHAPE))

sim-down: venv  ## remove the lab and anything a failed run left
	$(SIMLAB) down

sim-status: venv  ## nodes, systemd state, management addresses, cables
	$(SIMLAB) status

sim-cut: venv  ## cut a cable: make sim-cut END=node1:enp1s0f1np1
	$(SIMLAB) cut $(END)

sim-restore: venv  ## plug it back: make sim-restore END=node1:enp1s0f1np1
	$(SIMLAB) restore $(END)

sim-rename: venv  ## a hardware change: make sim-rename END=node1:enp1s0f1np1 NAME=enp2s0f1np1
	$(SIMLAB) rename $(END) $(NAME)

sim-replace: venv  ## swap a node for a new box (new SSH host keys): make sim-replace NODE=node3
	$(SIMLAB) replace $(NODE)

sim-stop: venv  ## power a node off: make sim-stop NODE=node2
	$(SIMLAB) stop $(NODE)

sim-start: venv  ## power it on again (re-cabled): make sim-start NODE=node2
	$(SIMLAB) start $(NODE)

sim-kill: venv  ## SIGKILL a process on a node: make sim-kill NODE=node2 PROC=lldpd
	$(SIMLAB) kill $(NODE) $(PROC)

build: venv  ## ansible-galaxy collection build into build/
	$(BIN)/ansible-galaxy collection build --force --output-path build .

awx-surveys: venv  ## regenerate awx/surveys.yml (the AWX surveys) from the roles' argument specs
	$(PY) -m tools.awx surveys

ee: venv  ## the execution environment's build context in build/ee (ansible-builder create; no registry needed)
	rm -rf build/ee-collection build/ee
	$(BIN)/ansible-galaxy collection build --output-path build/ee-collection .
	$(BIN)/ansible-builder create --file execution-environment.yml --context build/ee
	@echo "ee: build it with: $(BIN)/ansible-builder build --file execution-environment.yml --tag llmlab-cluster-ee"

size: venv  ## which clusters hold a model fast enough (ARGS='MODEL --quant Q --context N --users U --tok-s T --price gb10=3999'; none: the README's two questions)
	$(PY) -m tools.size $(ARGS)

calibration-table: venv  ## print the planner's calibration table for the README
	@$(PY) -c 'import sys; sys.path.insert(0, ".collections"); \
	from ansible_collections.llmlab.cluster.plugins.module_utils import calibration as c; \
	print(c.markdown_table(c.score()))'

variables-table: venv  ## regenerate the README's variable table from the roles' argument specs
	$(PY) -m tools.spec_table --write

clean:  ## remove the venv, builds and caches (take the lab down first: make sim-down)
	rm -rf $(VENV) .collections build .pytest_cache .mypy_cache .cache inventories/*/artifacts
