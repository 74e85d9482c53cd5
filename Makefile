# Two commands: `make demo` and `make test`. Both install what they need first.
PY := .venv/bin/python
PYTEST_ARGS ?=
LINT_PKGS := $(foreach d,callcenter ari_app agi_scripts api bridges dialplan asterisk_sim bench scripts,$(if $(wildcard $(d)/__init__.py),$(d)))

.PHONY: demo test lint bench bench-real wheel soak bootstrap bootstrap-demo clean

bootstrap:
	scripts/bootstrap.sh test

bootstrap-demo:
	scripts/bootstrap.sh demo

demo: bootstrap-demo
	.venv/bin/callcenter demo

# builds the real Asterisk once (cached outside the clone) and passes it to the real tier (tests/real)
test: bootstrap
	scripts/test.sh $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy $(LINT_PKGS)

bench: bootstrap
	$(PY) -m bench

# On the real Asterisk with sipp: call load, queue and monitoring at scale. Builds Asterisk first when missing
# (cached outside the clone, as `make test` does); where it cannot be built each bench says why and is skipped.
bench-real: bootstrap
	-scripts/build-asterisk.sh > /dev/null
	$(PY) -m bench --real

# The wheel a PBX host installs (README "Install on a PBX host"), into dist/.
wheel: bootstrap
	$(PY) -m build --wheel --no-isolation --outdir dist .

# The reliability suite (issue 12): bounded, loopback only; prints one line per scenario, writes RELIABILITY.md.
soak: bootstrap
	$(PY) -m bench.soak --report RELIABILITY.md

clean:
	rm -rf .venv .demo var .pytest_cache .mypy_cache .ruff_cache build dist
