# rce — developer entry points. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help up down env status test bench crds images clean

help:
	@echo "make up      bring up a local Kubernetes + Redis + RabbitMQ + the rce operator and shim"
	@echo "             (RCE_NODES=N nodes, default 2; RCE_OPERATOR_REPLICAS=N operators, default 1)"
	@echo "make test    run the whole test suite (brings the cluster up first if needed)"
	@echo "make env     print the export lines for the running setup (eval \"\$$(make env)\")"
	@echo "make status  show which components are running (every node's kubelet and containerd, every operator)"
	@echo "make bench   measure end-to-end latency and throughput"
	@echo "make down    stop every process 'make up' started"
	@echo "make crds    regenerate crds/ from the Rust types"
	@echo "make images  build the sandbox images (and import them when the cluster runs)"

up:
	@hack/up.sh

down:
	@hack/down.sh

env:
	@hack/cluster.sh env

status:
	@s=0; hack/cluster.sh status || s=1; hack/engine.sh status || s=1; exit $$s

test:
	@hack/test.sh

bench:
	@hack/bench.sh $(BENCH_ARGS)

crds:
	@source hack/common.sh && cargo run -q -p rce-operator --bin crdgen > crds/rce.dev.yaml && hack/helm-crds.sh sync

images:
	@sandbox-images/build.sh --import

clean: down
	rm -rf /var/lib/rce-local
