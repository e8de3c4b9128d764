# osd: developer entry points. `make run` and `make test` install what they need first.
PYTHON  ?= /usr/bin/python3
VENV    ?= .venv
STATE   ?= $(CURDIR)/state
PYTEST_ARGS ?=

APT_RUNTIME = deps/apt-runtime.txt
APT_TEST    = deps/apt-test.txt
APT_VM      = deps/apt-vm.txt

.PHONY: help deps deps-test venv run test test-host bench vm-image vm-test clean

help:
	@echo "make run        install runtime packages + venv, run the daemon (native, state in state/)"
	@echo "make test       install everything, run every test tier (unit, contract, api, system, vm)"
	@echo "make test-host  every tier but the VM lab"
	@echo "make bench      run the benchmarks in tests/bench (figures, not pass/fail)"
	@echo "make vm-test    build (or reuse) the VM image and run the VM tier only"

deps:
	deps/apt-install $(APT_RUNTIME)

deps-test:
	deps/apt-install $(APT_RUNTIME) $(APT_TEST) $(APT_VM)

# The venv comes from Debian's python3 with --system-site-packages so that the official
# nftables binding (python3-nftables) is importable.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: deps venv
	$(VENV)/bin/osd serve --state-dir $(STATE)

# The VM image is built (or found in its cache) before pytest starts, so a cold build is
# not charged to a single test's timeout.
test: deps-test venv vm-image
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

test-host: deps-test venv
	$(VENV)/bin/pytest tests -m "not vm" $(PYTEST_ARGS)

bench: deps-test venv
	$(VENV)/bin/python tests/bench/bench_transport.py
	$(VENV)/bin/python tests/bench/bench_net.py
	$(VENV)/bin/python tests/bench/bench_vol.py
	$(VENV)/bin/python tests/bench/bench_lease.py
	$(VENV)/bin/python tests/bench/bench_proxy.py

vm-image: deps-test
	$(PYTHON) tests/vm/vmlab.py build

vm-test: deps-test venv vm-image
	$(VENV)/bin/pytest tests/vm -m vm $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
