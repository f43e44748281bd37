# make run   - install what is missing, start the service (embedded backend + gateway), print the URL
# make test  - install what is missing, run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: install run test lint bench latency load load-big train clean

# System tools the tests run (Debian packages): promtool/prometheus and docker-compose for the deployment
# checks, chromium and chromium-driver for the web page's browser test, redis-server and nginx for the
# scale-out proof (tests/deploy/test_scale_out.py), kubectl for rendering the Kustomize overlays.
SYSTEM_TOOLS := /usr/bin/promtool /usr/bin/docker-compose /usr/bin/chromium /usr/bin/chromedriver \
  /usr/bin/redis-server /usr/sbin/nginx /usr/bin/kubectl
SYSTEM_PACKAGES := prometheus docker-compose chromium chromium-driver redis-server nginx kubectl

$(SYSTEM_TOOLS):
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else echo "install $(SYSTEM_PACKAGES) (Debian names) for the tests" >&2; exit 1; fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	PORT=$(PORT) $(BIN)/rgic serve --port $(PORT)

test: $(STAMP) $(SYSTEM_TOOLS)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.perceptual && $(BIN)/python -m benchmarks.perceptual --plot
	$(BIN)/python -m benchmarks.rd_kodak

latency: $(STAMP)
	$(BIN)/python -m benchmarks.latency

load: $(STAMP)
	$(BIN)/python -m benchmarks.load --clients 4 --minutes 3

load-big: $(STAMP)
	$(BIN)/python -m benchmarks.big_photo --concurrent 4

train: $(STAMP)
	nice -n 15 $(BIN)/python -m model_export.train --snapshot-dir checkpoints/residual_gru \
	  --init-from $$(ls -d models/residual_gru/* | sort -V | tail -1) --adaptive-gain --max-iterations 24 \
	  --crop 128 --batch 6 --iterations 8 --long-iterations 16 --msssim-weight 0.8 --colour-weight 0.25 --lr 1e-4 $(TRAIN_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
