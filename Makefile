# Two commands: `make demo` and `make test`. Both install what they need first.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: demo test lint bench bootstrap bootstrap-demo clean

bootstrap:
	scripts/bootstrap.sh test

bootstrap-demo:
	scripts/bootstrap.sh demo

demo: bootstrap-demo
	.venv/bin/callcenter demo

test: bootstrap
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy $(wildcard callcenter ari_app agi_scripts api bridges dialplan asterisk_sim bench)

bench: bootstrap
	$(PY) -m bench

clean:
	rm -rf .venv .demo var .pytest_cache .mypy_cache .ruff_cache
