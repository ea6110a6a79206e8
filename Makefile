# Two commands do everything on a fresh machine with only python3:
#   make demo   - create .venv, install, run the depth sweep (CPU, ~2 minutes)
#   make test   - create .venv, install, lint and run the test suite
#   make docs   - build the documentation site into site/ (mkdocs build --strict)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint format docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# venvs made before the rename hold the editable dist 'erf': drop it (no-op elsewhere)
	-@$(PY) -m pip uninstall --yes --quiet erf >/dev/null 2>&1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m erf.run experiment=depth_sweep

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collects no tests (e.g. a -k filter that matches nothing): say so, exit 0.
# The suite runs on every core (pytest-xdist, -n auto: 2 workers on a 2-core machine, about
# 11 min instead of about 20); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
test: lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# The test suite builds the site too (tests/test_docs_site.py); this writes it to site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --clean -d site

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site
