# Two commands do all set-up on a fresh Debian/Ubuntu machine:
#   make demo   runs the main job on the shipped default model (until it exists: prepares the data)
#   make test   runs the test suite
# Both create .venv and install what they need (apt packages where missing, then pip).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data
OUT    ?= out

.PHONY: demo test venv system clean bench

$(VENV)/.installed: pyproject.toml
	@scripts/install-system.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

demo: venv
	@test -d $(DATA) || { echo "make demo: no data folder at $(DATA) (set DATA=...)"; exit 2; }
	$(VENV)/bin/tatum data prepare $(DATA)/pijama $(DATA)/pop909 $(DATA)/pianolatron -o $(OUT)/shards
	$(VENV)/bin/tatum data stats $(OUT)/shards

bench: venv
	$(PY) benchmarks/tokenize_speed.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
