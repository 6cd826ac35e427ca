# Mentorwijzer: every target does the set-up it needs first (idempotent, stamp files).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONDONTWRITEBYTECODE := 1
export PYTHONWARNINGS := ignore
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

# matplotlib build deps; curl for the scripts; PostgreSQL, Redis and nginx for serve-prod and its tests
APT_PACKAGES := libfreetype-dev libqhull-dev pkg-config curl postgresql redis-server nginx
DEPS_STAMP := $(VENV)/.deps-stamp
PKG_STAMP := $(VENV)/.pkg-stamp
APT_STAMP := $(VENV)/.apt-stamp
SPACY_MODEL := build/nl_lemma
MODEL := models/mentorwijzer.tar.gz
# The fitted knowledge-base ranker (bot/knowledge.py), loaded by the action server before it listens.
KNOWLEDGE_INDEX := build/knowledge_index.npz
TRAIN_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' 2>/dev/null)

.PHONY: help install chat serve test test-unit test-rasa validate train eval bench clean telegram serve-prod stop-prod \
	destroy-prod loadtest

# `make help` lists every target with a `## ` description, in this file's order.
help: ## this list
	@echo "Mentorwijzer: every target does the set-up it needs first."
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z-]*:[^=]*## / { printf "  make %-13s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

install: $(PKG_STAMP) $(SPACY_MODEL)/meta.json $(MODEL) $(KNOWLEDGE_INDEX) ## set-up only: venv, packages, Dutch spaCy pipeline, trained model, knowledge index

$(APT_STAMP):
	@if [ "$$(id -u)" = "0" ] && ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo ">> installing system packages: $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@touch $@

$(DEPS_STAMP): requirements.txt requirements.lock constraints.txt $(APT_STAMP)
	@echo ">> installing Python packages into $(VENV) (first time: a few minutes)"
	@start=$$(date +%s); MPLSETUPCFG=$(CURDIR)/mplsetup.cfg $(BIN)/pip install -q --disable-pip-version-check \
		--ignore-requires-python -c constraints.txt -c requirements.lock -r requirements.txt \
		&& echo ">> packages installed in $$(( $$(date +%s) - start )) s"
	@touch $@

$(PKG_STAMP): pyproject.toml $(DEPS_STAMP)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(SPACY_MODEL)/meta.json: scripts/build_spacy_nl.py $(DEPS_STAMP)
	$(BIN)/python scripts/build_spacy_nl.py $(SPACY_MODEL)

$(MODEL): $(TRAIN_INPUTS) $(SPACY_MODEL)/meta.json $(DEPS_STAMP)
	@echo ">> training the Rasa model (about 2 minutes on 2 cores)"
	@mkdir -p models
	@start=$$(date +%s); $(BIN)/rasa train --quiet --augmentation 0 --fixed-model-name mentorwijzer --out models \
		&& echo ">> trained in $$(( $$(date +%s) - start )) s"
	@touch $@

# Rewritten only when its key (knowledge files, bot/knowledge.py, library versions) changed.
$(KNOWLEDGE_INDEX): $(wildcard knowledge/*.yml) bot/knowledge.py $(PKG_STAMP)
	$(BIN)/python -m bot.knowledge $@
	@touch $@

train: $(MODEL) ## (re)train the Rasa model when config, domain or data/ changed

chat: install ## talk to Mentorwijzer in the terminal (servers in the background, /stop ends)
	@scripts/chat.sh

serve: install ## action server on :5055 + Rasa REST on :5005 in the foreground (Ctrl-C stops both)
	@scripts/serve.sh

telegram: install ## the Telegram bridge (needs TELEGRAM_BOT_TOKEN)
	$(BIN)/mentorwijzer telegram

serve-prod: install ## production topology on this machine: PostgreSQL, Redis, actions, 2 Rasa, nginx :8080/:8081
	@scripts/prod.sh start

stop-prod: ## stop what serve-prod started (its state stays)
	@scripts/prod.sh stop

destroy-prod: ## stop serve-prod and delete its state: databases, secrets, logs (scripts/prod.sh destroy)
	@scripts/prod.sh destroy

MENTORS ?= 200
CONCURRENCY ?= 50
loadtest: install ## simulated mentors through nginx with faults, then scripts/fuzz.py (MENTORS=200 CONCURRENCY=50)
	@scripts/prod.sh start
	$(BIN)/python scripts/loadtest.py --mentors $(MENTORS) --concurrency $(CONCURRENCY)
	$(BIN)/python scripts/fuzz.py

validate: $(PKG_STAMP) ## rasa data validate, NLU data checks (duplicates, held-out leaks), knowledge base
	$(BIN)/python scripts/validate.py
	$(BIN)/python scripts/check_nlu_data.py
	$(BIN)/mentorwijzer check-knowledge

test-unit: $(PKG_STAMP) $(SPACY_MODEL)/meta.json ## pytest without the tests marked integration (no servers started)
	$(BIN)/pytest -q -m "not integration" tests

test-rasa: install ## conversation tests: tests/test_stories.yml with the trained model
	$(BIN)/rasa test core --stories tests/test_stories.yml --model $(MODEL) --fail-on-prediction-errors --out var/results/core
test: install validate ## every test: validate, pytest (unit, actions, integration, security), test-rasa
	$(BIN)/pytest -q tests
	$(MAKE) --no-print-directory test-rasa

eval: install ## knowledge-question accuracy (dev and blind sets) and NLU macro F1
	$(BIN)/python scripts/evaluate.py

bench: install ## latency, throughput, memory and training-time figures (BENCH_ARGS="--only scaleout")
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean: ## delete the trained model, build/ (spaCy pipeline, knowledge index) and test results
	rm -rf models build var/results .pytest_cache
