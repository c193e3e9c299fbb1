# The two commands: `make demo` (two nodes on this machine) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The developer commands (type checks, migrations, tests) load the settings as the demo does;
# `checks` sets APPLIANCE_DEMO=0 for the deployment checks.
export APPLIANCE_DEMO ?= 1

.PHONY: demo test system lint typecheck checks pytest bench bench-logs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# What the demo needs from the system is checked (and installed as root) before the virtualenv.
demo:
	$(PYTHON) -m devtools.system demo
	@$(MAKE) --no-print-directory $(STAMP)
	$(PY) scripts/demo.py

test: system lint typecheck checks pytest

# What the tests need from the system (the demo's needs and chromium), installed as root.
system:
	$(PYTHON) -m devtools.system test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

# Production-like settings: no demo defaults, debug off, a real secret key.
checks: $(STAMP)
	APPLIANCE_DEMO=0 DJANGO_DEBUG=0 DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
		$(PY) manage.py check --deploy --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

pytest: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) scripts/bench.py

# The traffic-log copy against `scp -r` with the same pinned key (BENCH_LOGS_MB, default 1000).
bench-logs: $(STAMP)
	$(PY) scripts/bench_logs.py

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache
