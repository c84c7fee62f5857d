# The two commands of the quick start; each does its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools' build prints ~40 lines of deprecation notes even with --quiet (issue #25 (13d)): kept in a log
	@$(BIN)/pip install --quiet -e '.[test,dev,bench,docs]' > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@echo "installed paperbot and its test tools into .venv (pip's output: $(VENV)/install.log)"
	touch $(STAMP)

# The daemon on the default config: `paperbot init` writes it first when there is none (a laptop's values: the
# state folder ./state, the web app on 127.0.0.1:8080; channels without credentials write to state/outbox/).
run: $(STAMP)
	@test -f paperbot.toml || test -n "$$PAPERBOT_CONFIG" || $(BIN)/paperbot init
	$(BIN)/paperbot run

# The npm `mjml` package (the reference MJML validator used by the tests), pinned by package-lock.json.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund --loglevel=error && touch $@ \
		|| echo "npm ci failed: the MJML validator tests will be skipped"; \
	else \
		echo "npm not found: the MJML validator tests will be skipped"; \
	fi

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench

bench: $(STAMP)
	$(BIN)/python bench/parse_speed.py

clean:
	rm -rf $(VENV)

# The documentation site from docs/ (Sphinx, MyST, Furo, sphinx-click); warnings are errors, as in the tests.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
