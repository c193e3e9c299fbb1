# The two commands: `make demo` (two nodes on this machine) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The developer commands (type checks, migrations, tests) load the settings as the demo does;
# `checks` sets APPLIANCE_DEMO=0 for the deployment checks.
export APPLIANCE_DEMO ?= 1

.PHONY: demo test lint typecheck checks pytest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: lint typecheck checks pytest

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

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache
