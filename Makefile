VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install test demo bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Fastest first: lint and types (seconds), the installed wheel (under a minute), then the suite.
test: $(VENV)/.installed
	$(VENV)/bin/ruff check nas tests bench tools
	$(VENV)/bin/mypy
	tests/wheel_check.sh $(PY)
	$(PY) -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/nas search space=mnas target_flops=400M

bench: $(VENV)/.installed
	$(PY) bench/cost_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
