# ardamail-admin — the two commands a new user needs:
#   make run    install, migrate, and run the dashboard + worker + simulated providers (no credentials)
#   make test   install and run the whole suite (CI runs this through .ci/run)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test lint install install-dev browser relay-services clean bench serve smoke deploy-check resilience

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PIP) install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Debian's chromium for the browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

# Debian's Postfix (left unconfigured), its LMDB tables, OpenSSH's server and sudo, for tests/test_postfix_relay.py.
relay-services:
	@test -x /usr/sbin/sshd -a -x /usr/sbin/postfix -a -x /usr/bin/sudo -a -e /usr/lib/postfix/postfix-lmdb.so || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $$SUDO debconf-set-selections && \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix postfix-lmdb openssh-server sudo >/dev/null; }

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_local
	$(PY) manage.py run_local

lint: install-dev
	$(VENV)/bin/ruff check --select F,E9,I --exclude .venv .

# The suite, then the fault matrix (each test runs once; the matrix prints its table last).
test: install-dev browser relay-services lint
	$(PY) -m pytest -m "not resilience" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory resilience

# Issue 12's fault matrix: every provider call of every workflow under every fault, printed as a
# table with the cells run and passed (tests/test_resilience_matrix.py, tests/resilience_report.py).
resilience: install-dev
	$(PY) -m pytest -m resilience -q

bench: install-dev
	$(PY) -m bench.run  # PostgreSQL at BENCH_DATABASE_URL (default: 127.0.0.1:5432); writes bench/results.md

# The production process model on this machine (README "Deploy"): gunicorn, two Celery workers and
# beat with the production settings, on PostgreSQL and Redis on 127.0.0.1, providers simulated.
SERVE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ardamail_serve
SERVE_BROKER_URL ?= redis://127.0.0.1:6379/12
serve: install
	psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(SERVE_DATABASE_URL))'" | grep -q 1 \
	  || psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE "$(notdir $(SERVE_DATABASE_URL))"'
	DATABASE_URL=$(SERVE_DATABASE_URL) CELERY_BROKER_URL=$(SERVE_BROKER_URL) $(PY) -m bench.production_smoke --serve

# The same model onboarding 20 configurations through HTTP; prints seconds and tasks per worker.
smoke: install
	DATABASE_URL=$${DATABASE_URL:-$(SERVE_DATABASE_URL)} CELERY_BROKER_URL=$${SMOKE_BROKER_URL:-redis://127.0.0.1:6379/13} \
	  $(PY) -m bench.production_smoke

# The Dockerfile (hadolint) and the Kubernetes manifests (schemas, kustomize overlays), offline.
deploy-check: install-dev
	$(VENV)/bin/hadolint Dockerfile
	$(PY) deploy/check_manifests.py

clean:
	rm -rf var test-artifacts
