# Set-up and entry points. `make demo` and `make test` do everything on a fresh machine, offline but for the
# package index: create .venv, install torch (the pinned CPU wheel where one is at hand) and csas, then run.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
# Set to https://download.pytorch.org/whl/cpu on a CPU-only machine that has no local torch wheel.
TORCH_INDEX ?=
DEMO   ?= .demo

.PHONY: install demo test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,fast]"
	touch $@

install: $(VENV)/.installed

# Fine-tune the tiny pretrained OPUS-MT en->fr base on the shipped domain sample, then score base and adapter on
# held-out publications with the shipped glossary: the last lines are `chrF before -> after: X -> Y` and
# `terms before -> after: X -> Y`.
demo: install
	HF_HUB_OFFLINE=1 $(BIN)/csas tiny-models $(DEMO)/models --only opus_mt_en_fr
	HF_HUB_OFFLINE=1 $(BIN)/csas finetune --which opus_mt_en_fr \
		--model-id $(DEMO)/models/opus_mt_en_fr \
		--data csas_cli/assets/sample_pairs.jsonl \
		--output-dir $(DEMO)/runs --overwrite \
		--lr 3e-3 --logging-steps 10 --eval-steps 40 --save-steps 40
	HF_HUB_OFFLINE=1 $(BIN)/csas evaluate --model $(DEMO)/runs/opus_mt_en_fr \
		--data csas_cli/assets/heldout_pairs.jsonl --compare-base --max-new-tokens 128 \
		--glossary csas_cli/assets/glossary.tsv

# Everything (what CI runs), and the fast subset for development: no end-to-end, resume, distributed, SLURM or
# benchmark runs.
test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(DEMO) .pytest_cache
