# reforge: make install | make test | make demo
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo clean-venv

install: $(STAMP)

# Re-runs only when the packaging inputs change; a second `make install` is a no-op.
$(STAMP): setup.py requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 -c requirements/constraints.txt
	$(PY) -m pip install -q -e '.[vllm,deepspeed,dev]' -c requirements/constraints.txt
	# PyPI torchvision/torchaudio/torchcodec break `import transformers` beside torch 2.13 CPU.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	sh launch/install_sandbox.sh $(PY)
	touch $(STAMP)

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) recipes/ultra_grpo.py

clean-venv:
	rm -rf $(VENV)
