# One command each: `make demo` installs and runs the demo; `make test` installs and runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo demo-quick test test-slow clean

$(BIN)/privacam: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/privacam

install: $(BIN)/privacam

demo: install
	$(BIN)/privacam demo --out demo_out --workers 2

demo-quick: install
	$(BIN)/privacam demo --quick --out demo_out_quick

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) demo_out demo_out_quick runs .pytest_cache
