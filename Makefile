# The two commands a new user runs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Pinned and installed first: a looser requirement would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test lint install browser docs clean

$(BIN)/hpo: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/hpo

install: $(BIN)/hpo

# A real study: SGD with momentum vs Adam on handwritten digits, 2 workers, embedded storage;
# then the playbook's diagnostics on its results (demo-report/report.html).
demo: install
	rm -rf demo-journal.log demo-journal.log.hpo-lock demo-report
	$(BIN)/hpo run studies/digits_optimizer.py --workers 2 --storage demo-journal.log
	$(BIN)/hpo report studies/digits_optimizer.py --storage demo-journal.log --out demo-report

# The dashboard's browser test drives Debian's Chromium, never a downloaded browser build.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "installing chromium and chromium-driver from Debian's packages"; \
	        DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	    else \
	        echo "the browser test needs Debian's chromium and chromium-driver:"; \
	        echo "  sudo apt-get install chromium chromium-driver"; exit 2; \
	    fi; \
	fi

# The reference (docs/, mkdocs.yml) as a site in site/. --strict: a broken link or anchor, a page
# missing from the nav, or a docstring the API reference cannot parse is an error.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The gates: ruff on all Python code, mypy on the package (its settings are in pyproject.toml).
lint: install
	$(BIN)/ruff check hpo tests bench studies
	$(BIN)/mypy hpo

# pytest exits 5 when it collects nothing; that must fail, and it does: make fails on any non-zero.
test: install lint docs browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) *.egg-info demo-journal.log* demo-report site
