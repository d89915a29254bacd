# Multimodal Emotion Analyzer — every entry point a user or CI needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
BUNDLE    ?= var/bundles/default
VIDEO     ?= ../shared/data/talking/vr_face_1.mp4
STAMP     := $(VENV)/.setup-$(shell cat pyproject.toml contract/pyproject.toml client/pyproject.toml scripts/setup.sh 2>/dev/null | sha1sum | cut -c1-12)
PYTEST    := $(PY) -m pytest
MELD      ?= ../shared/data/meld
AV        ?= ../shared/data/av/javanese
TEXT_WEIGHTS := training/weights/meld-text-mpnet-dialogue-v1.safetensors
TEXT_ENCODER := training/weights/meld-text-mpnet-v1.safetensors
FACE_WEIGHTS := training/weights/face-av-v1.safetensors
FACE_FOLDS   := var/runs/face-clips/folds

.PHONY: help setup hooks model demo test unit-tests integration-tests e2e-tests lint up down status restart bench bench-auth clean \
	train-text train-face text-ablation eval eval-av eval-speakers docs docs-pictures crd-schemas

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: $(STAMP)  ## system packages, the virtual environment in .venv, and the default model bundle
$(STAMP): pyproject.toml contract/pyproject.toml client/pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	@rm -f $(VENV)/.setup-* && touch $@

hooks: setup  ## install the git hooks: ruff and mypy before a commit, the message's shape after it
	$(VENV)/bin/pre-commit install

model: setup $(BUNDLE)/manifest.json  ## build the default model bundle (deterministic, seconds)
$(BUNDLE)/manifest.json: $(TEXT_WEIGHTS) $(TEXT_WEIGHTS:.safetensors=.json) $(wildcard training/weights/voice-v2.* $(FACE_WEIGHTS:.safetensors=).* training/weights/fusion-rule-v3.json)
	$(PY) -m training.default_bundle --out $(BUNDLE) --weights $(TEXT_WEIGHTS)

train-text: setup  ## retrain the default text weights on MELD train, selected on dev (CPU: MPNet ≈ 80 min, GRU 2 min)
	$(PY) -m training.train --data $(MELD) --modalities text --text-backbone all-mpnet-base-v2 --lora-rank 16 \
		--lr-lora 2e-4 --lr-patience 0 --epochs 3 --threads 2 --no-progress --output-dir var/runs/meld-text-mpnet \
		--text-weights $(TEXT_ENCODER)
	$(PY) -m training.calibrate --text-weights $(TEXT_ENCODER) --meld-csv $(MELD)/dev_sent_emo.csv
	$(PY) -m training.train_dialogue --data $(MELD) --text-weights $(TEXT_ENCODER) --out $(TEXT_WEIGHTS)

train-face: setup  ## fine-tune the face network on the kit's clips' faces beside FER's, by actor folds (CPU ≈ 10 min)
	$(PY) -m training.face_clips --clips $(AV) --folds-out $(FACE_FOLDS) --weights $(FACE_WEIGHTS)

# The face networks of the actor folds are not shipped (5 × 5 MB): the same command makes them.
$(FACE_FOLDS)/fold-4.safetensors:
	$(PY) -m training.face_clips --clips $(AV) --folds-out $(FACE_FOLDS)

text-ablation: setup  ## the text encoders' table: dev figures, training time, ms per utterance here (WEIGHTS=...)
	$(PY) -m training.text_ablation $(or $(WEIGHTS),$(wildcard training/weights/meld-text-*.safetensors))

eval: model  ## score the default bundle on MELD dev (JSON: weighted F1, accuracy, ECE)
	$(PY) -m training.evaluate --meld-csv $(MELD)/dev_sent_emo.csv --bundle $(BUNDLE) --json

docs-pictures: model  ## the pictures in docs/ that show a result, from the default bundle (console: the e2e stack)
	$(VENV)/bin/emotion-analyzer analyze ../shared/data/talking/vr_face_1.mp4 --bundle $(BUNDLE) --plot docs/timeline-vr_face_1.png
	EA_TEST_BUNDLE_DIR=$(BUNDLE) $(PYTEST) tests/e2e/test_console.py -k "watches_it_finish or timeline_table" -q
	cp var/artifacts/console/result-desktop.png docs/console-result.png

eval-av: model $(FACE_FOLDS)/fold-4.safetensors  ## the whole analysis of the kit's real face + voice clips, by actor: each modality and fused
	$(PY) -m training.eval_av --clips $(AV) --bundle $(BUNDLE) --folds training/weights/av-folds --face-folds $(FACE_FOLDS) \
		--reliability-png var/reliability-av.png

eval-speakers: setup  ## speakers told apart in conversations of the kit's real voices, given turns and whole recordings (DER, turns, count; ≈ 12 min)
	$(PY) -m training.diarization_eval --voice-data ../shared/data/voice --talking ../shared/data/talking
	$(PY) -m training.diarization_whole --voice-data ../shared/data/voice

demo: model  ## analyse a real video in-process: make demo [VIDEO=path]
	$(VENV)/bin/emotion-analyzer analyze $(VIDEO) --bundle $(BUNDLE)

test: model lint  ## ruff, mypy, then unit, integration and end-to-end tests (what CI runs)
	$(PYTEST) tests

unit-tests: model  ## fast tests of pure logic
	$(PYTEST) tests/unit

integration-tests: model  ## tests against the real broker, PostgreSQL and S3 server
	$(PYTEST) tests/integration

e2e-tests: model  ## the whole stack as processes
	$(PYTEST) tests/e2e

lint: setup  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check contract client shared services training tests analyzer devstack scripts
	$(VENV)/bin/mypy contract client shared services training tests analyzer devstack scripts

docs: setup  ## regenerate docs/openapi.json (REST API) and docs/asyncapi.json (Kafka events) from the code
	$(PY) scripts/export_api_docs.py

up: model  ## start broker, PostgreSQL, S3 server and the six services as processes (MONITORING=1: Prometheus)
	$(PY) -m devstack up --bundle $(BUNDLE) $(if $(MONITORING),--monitoring)

down:  ## stop what `make up` started
	$(PY) -m devstack down

status:  ## each process of the local stack: name, pid, port, running or not
	$(PY) -m devstack status

restart:  ## stop one process of the local stack and start it as it was: make restart SERVICE=broker [KILL=1]
	@test -n "$(SERVICE)" || { echo "usage: make restart SERVICE=NAME (a name that make status lists)"; exit 2; }
	$(PY) -m devstack restart $(SERVICE) $(if $(KILL),--kill)

bench: model  ## stage timings and real-time factors, in-process and through the stack; short clips
	$(PY) scripts/bench.py
	$(PY) scripts/bench_short_clips.py

bench-auth: setup  ## gateway throughput and latency with and without the auth check; revocation delay
	$(PY) scripts/bench_auth.py

crd-schemas:  ## re-vendor the custom resources' JSON schemas in deploy/k8s/schemas (needs node and npm)
	$(PY) scripts/fetch_crd_schemas.py

clean:  ## remove built bundles, caches and local stack data (keeps .venv)
	rm -rf var
