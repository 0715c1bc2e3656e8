# Small task runner; the README's two commands are the source of truth.
.PHONY: help up test lint

help:  ## list targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

up:  ## run the system with the demo workload on the embedded broker
	. .venv/bin/activate && kessai up --demo

test:  ## the whole suite, as CI runs it
	bash .ci/run

lint:  ## ruff
	. .venv/bin/activate && ruff check .
