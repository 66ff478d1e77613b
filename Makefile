# DeepLog Workbench: the two commands of the quick start are `make lab` and `make test`.
# Both create .venv when missing and install everything; running them twice installs nothing new.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0
DEMO   := data/demo/openstack_sim.log
PORT   ?= 8888
APP_PORT ?= 8866
ifndef TOKEN
TOKEN := $(shell $(PYTHON) -c "import secrets; print(secrets.token_hex(16))")
endif

.PHONY: lab app test install lint format bench demo-data browser-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The pinned CPU torch goes in first, so that nothing later pulls a CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the real-browser tests; skipped without root (the tests then skip,
# except under CI=true where they fail loudly).
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "chromium not installed and no root: browser tests will skip"; fi

$(DEMO): | $(STAMP)
	$(VENV)/bin/deeplog-workbench simulate --out $(DEMO) --instances 600 --normal-head 0.5 --seed 7

demo-data: $(DEMO)

lab: $(STAMP) $(DEMO)
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/00_quickstart.ipynb

# The workbench alone, as a web app (Voila): loopback only, with a token in the URL.
app: $(STAMP)
	@echo "DeepLog Workbench app: http://127.0.0.1:$(APP_PORT)/?token=$(TOKEN)"
	$(VENV)/bin/voila --no-browser --Voila.ip=127.0.0.1 --port=$(APP_PORT) --token=$(TOKEN) \
		notebooks/app.ipynb

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache >/dev/null || $(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP) browser-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
