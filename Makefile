# Vigie — two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
VIGIE := .venv/bin/vigie
# Real footage when ../shared/data is there, else the synthetic scenes the project renders.
CAMERAS ?= $(if $(wildcard ../shared/data/aboda_video4/video4.avi),deploy/demo/cameras.yaml,deploy/demo/cameras-synthetic.yaml)
ROUTING ?= deploy/demo/routing.yaml
POLICY ?= deploy/demo/policy.yaml
STATION_PORT ?= 8080
PORTS ?= 8091,8092,8093
REGISTER_PORT ?= 8094
EVIDENCE_PORT ?= 8095
DATA ?= ../shared/data
PYTEST_ARGS ?=
export VIGIE_KAFKA ?= 127.0.0.1:9092

.PHONY: help venv system-deps system-deps-test broker broker-stop topics demo up test chaos soak evaluate bench bench-capacity gpu-check proto proto-check stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.venv/.ready: requirements.lock pyproject.toml scripts/venv.sh
	scripts/venv.sh
	touch $@

venv: .venv/.ready ## create .venv (third-party packages installed once, shared between clones)

system-deps: ## install the Debian packages the demo needs (JDK, Maven) when missing
	scripts/system-deps.sh demo

system-deps-test: ## install the Debian packages the tests need (kcat, protoc, chromium, RTSP server...)
	scripts/system-deps.sh test
	scripts/s3-server.sh
	scripts/kustomize.sh

broker: system-deps ## resolve Kafka from Maven Central and start it on 127.0.0.1 (KRaft, one node)
	VIGIE_PYTHON=$(if $(wildcard .venv/bin/python),$(abspath .venv/bin/python)) deploy/kafka/kafka.sh start

broker-stop: ## stop the broker cleanly
	deploy/kafka/kafka.sh stop

topics: venv broker ## create the topics with their partitions and retention
	$(VIGIE) topics apply --routing $(ROUTING)

demo: venv broker topics ## run the whole stack on real footage; Ctrl-C stops it cleanly
	$(VIGIE) up --cameras $(CAMERAS) --routing $(ROUTING) --policy $(POLICY) --station-port $(STATION_PORT) --ports $(PORTS) --register-port $(REGISTER_PORT) --evidence-port $(EVIDENCE_PORT) --demo-accounts

test: venv system-deps-test ## run the test suite (starts the broker when needed)
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

chaos: venv system-deps-test ## fault injection on a private broker: 60 events, each fault in its own run; 0 lost, 0 duplicated
	$(PY) -m vigie chaos $(CHAOS_ARGS)

soak: venv system-deps ## one hour, 30 synthetic cameras, every service: memory, descriptors and threads flat (not in CI)
	$(PY) -m vigie soak $(SOAK_ARGS)

evaluate: venv ## check the analytics' quality figures on the clips of ../shared/data (DATA=...)
	$(PY) -m vigie evaluate --suite $(DATA)

bench: venv broker ## print throughput, latency and memory figures
	$(PY) -m vigie bench

bench-capacity: venv broker ## cameras at 5 fps this machine carries through every service, CPU per camera (~3 min)
	$(PY) -m vigie.capacity

gpu-check: venv ## on a machine with CUDA: CPU and CUDA give the same detections; frames/s at batch 64 and 256
	$(PY) bench/gpu_check.py

proto: venv ## regenerate services/vigie/contracts from proto/
	$(PY) -m grpc_tools.protoc -I proto --python_out=services --pyi_out=services proto/vigie/contracts/v1/*.proto

stop: broker-stop ## stop what the demo left running

clean: broker-stop ## remove the venv and the broker's data
	rm -rf .venv var deploy/kafka/lib
