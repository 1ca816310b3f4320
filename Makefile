# Everything sets itself up: a .venv at the repo root with pinned dependencies (requirements.lock).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.cache/ultralytics

.PHONY: setup test serve demo cluster-demo soak bench-delivery lint typecheck proto clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, this is " + sys.version'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The product end to end on simulated streets: render (cached), serve, stream, subscribe, score, report.
demo: $(STAMP)
	$(VENV)/bin/detector demo --out demo-data $(DEMO_ARGS)

# The demo through three PostgreSQL-backed replicas, one killed mid-run; audits the shared log (exit 1 if it fails).
# Needs a PostgreSQL server (CLUSTER_DEMO_ARGS='--postgres postgresql://USER@HOST:PORT/DB', default local postgres).
cluster-demo: $(STAMP)
	$(VENV)/bin/detector cluster-demo --out demo-data/cluster $(CLUSTER_DEMO_ARGS)

# Prometheus metrics at http://127.0.0.1:9464/metrics and the operator console at http://127.0.0.1:8080/
# (the embedded default leaves both off).
serve: $(STAMP)
	$(VENV)/bin/detector serve --host 127.0.0.1 --port 50051 --set server.metrics_port=9464 \
	  --set server.http_port=8080 $(SERVE_ARGS)

# Mixed load on a real serve process; fails when an incident event is lost. SOAK_S=1800 for the 30-minute run.
SOAK_S ?= 60
soak: $(STAMP)
	$(PY) benchmarks/soak/run.py --seconds $(SOAK_S)

# Appended -> received latency of the webhook, mqtt and nats connectors (needs Mosquitto on 1883, NATS on 4222).
bench-delivery: $(STAMP)
	$(PY) benchmarks/delivery_latency.py $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check detector tests benchmarks
	$(PY) -m ruff format --check detector tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy detector

proto: $(STAMP)
	$(PY) -m detector.api.codegen

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
