# Two commands do all set-up on a fresh Debian/Ubuntu machine:
#   make demo   runs the main job on the shipped default model: a classical piece re-played as jazz
#   make test   runs the test suite
# Both create .venv and install what they need (apt packages where missing, then pip).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data
OUT    ?= out

.PHONY: demo test venv shards clean bench wheel

$(VENV)/.installed: pyproject.toml
	@scripts/install-system.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench,audio,realtime]"
	$(PY) -m pip install -q --no-deps basic-pitch==0.4.0
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

# Dvořák's Humoresque (a 1920s reproducing-piano roll from pianolatron's val split, unseen in training),
# re-played as jazz in the manner of Art Tatum, who made it one of his showpieces (README, "Re-play in a
# pianist's manner").
DEMO_IN ?= $(DATA)/pianolatron/midi/exp/xy699sy1462_exp.mid

demo: venv
	@test -f $(DEMO_IN) || { echo "make demo: $(DEMO_IN) not found (set DATA=... or DEMO_IN=...)"; exit 2; }
	$(VENV)/bin/tatum improvise $(DEMO_IN) -o $(OUT)/humoresque-tatum.mid --first 60 --style jazz \
		--artist "Art Tatum" --seed 1 --png $(OUT)/humoresque-tatum.png --wav $(OUT)/humoresque-tatum.wav --force
	@echo "wrote $(OUT)/humoresque-tatum.mid, .png and .wav"

shards: venv
	$(VENV)/bin/tatum data prepare $(DATA)/pijama $(DATA)/pop909 $(DATA)/pianolatron -o $(OUT)/shards
	$(VENV)/bin/tatum data stats $(OUT)/shards

# The wheel, with the shipped models inside (tatum/models is package data): dist/tatum-*.whl
wheel: venv
	$(PY) -m build --wheel --no-isolation --outdir dist

bench: venv
	$(PY) benchmarks/tokenize_speed.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache dist build
