# Small task runner; the README's two commands are the source of truth.
.PHONY: help up test lint mutate

help:  ## list targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

up:  ## run the system with the demo workload on the embedded broker
	. .venv/bin/activate && kessai up --demo

test:  ## the whole suite, as CI runs it
	bash .ci/run

lint:  ## ruff
	. .venv/bin/activate && ruff check .

# mutmut 3 asks for click>=8.4.2 while faust-streaming pins click<8.4; mutmut runs with the
# pinned click (checked with 3.8.1), so the pin is put back after mutmut is installed.
MUTMUT := mutmut==3.8.1
# `make mutate CHILDREN=1 MUTANTS='agents.pos.sales.*'`: fewer workers on a shared machine,
# or only the mutants whose names match (mutmut's patterns).
CHILDREN ?= 2
MUTANTS ?=

mutate:  ## mutation testing of the pure decision modules against the fast unit tests
	test -d .venv || python3 -m venv .venv
	. .venv/bin/activate && pip install -q -e '.[test]' && pip install -q '$(MUTMUT)' \
		&& pip install -q 'click>=6.7,<8.4'
	rm -rf mutants
	. .venv/bin/activate && mutmut run --max-children $(CHILDREN) $(MUTANTS) && python tests/mutation_summary.py
	# every survivor that is not a changed message must be named in docs/testing.md
	. .venv/bin/activate && python tests/mutation_review.py
