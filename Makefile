# Two commands matter: `make demo` (generate text with the default model) and
# `make test` (the full suite: pytest on the real model, mypy --strict, stub freshness;
# `make test-fast` leaves out the tests marked slow, docs/testing.md).
#
# Outside a virtual environment both make and use the project's own, .venv (Debian's and
# Ubuntu's python3 refuse pip installs: PEP 668). Inside one ($VIRTUAL_ENV set) they use it.
# PYTHON is the interpreter that makes .venv: `make test PYTHON=/usr/bin/python3.12`.
PYTHON ?= python3
ifdef VIRTUAL_ENV
PY := $(VIRTUAL_ENV)/bin/python
VENV_DEP :=
else
VENV := .venv
PY := $(VENV)/bin/python
VENV_DEP := $(PY)
endif
# What the editable, no-isolation build needs besides pyproject's [build-system] pins.
# setuptools>=70.1 (bdist_wheel built in): --no-build-isolation also builds the test
# extra's sdist-only packages (wget) with the venv's setuptools, and pip >= 25.3 has no
# setup.py-install fallback when that setuptools can't make a wheel.
BUILD_DEPS = "setuptools>=70.1" "scikit-build-core>=0.11" "nanobind==3.1.0" "cmake>=3.21" ninja numpy

.PHONY: install demo test test-fast stubs coverage bump-llama asan bench fuzz clean mtmd-check conformance downstream

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { echo "could not make $(VENV): on Debian/Ubuntu, apt install python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip

# Editable build into the persistent build/<wheel_tag> dir (incremental, ccache when present);
# the test dependencies are pyproject's `test` extra.
install: $(VENV_DEP)
	$(PY) -m pip install -q $(BUILD_DEPS)
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	$(PY) vendor/llama-ui/sync.py --optional

demo: install
	$(PY) -m llamanb generate "The three primary colors are" --max-tokens 64 --seed 42

test: install
	$(PY) -m pytest -q tests

# The fast tier: every test not marked slow (docs/testing.md), for the edit-test loop.
# make test runs both tiers and is what a change must pass.
test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

# llama-server's own test suite (tools/server/tests of the pinned tree) against
# `llamanb serve`, every test but those listed in tests/llama_server_suite/excluded.txt
# with their reasons (make test runs a representative part: tests/test_llama_server_suite.py).
conformance: install
	$(PY) -m tests.llama_server_suite.runner unit -q -rf

# LangChain's and LlamaIndex's llama.cpp classes on llamanb.compat (tests/test_compat_downstream.py;
# skipped by `make test` while they are not installed). llama-index-llms-llama-cpp goes in
# without its dependencies: they name llama-cpp-python, which llamanb.compat stands in for.
downstream: install
	$(PY) -m pip install -q --no-build-isolation -e ".[downstream,test]"
	$(PY) -m pip install -q --no-deps "llama-index-llms-llama-cpp>=0.4"
	$(PY) -m pytest -q tests/test_compat_downstream.py

# Regenerate the committed stubs from the built module (commit the result).
stubs:
	$(PY) cmake/stubgen.py "$$($(PY) -c 'import llamanb.core as c; print(c.__file__)')" stubs/llamanb

# Every function of the pinned llama.h bound or excluded with a reason, and llamanb.core's
# top level nothing but llama.h's mirror (llamanb.llama_h_coverage).
coverage:
	$(PY) -m llamanb.llama_h_coverage --check vendor/llama.cpp/include/llama.h

# Move the llama.cpp pin (docs/upgrading-llama-cpp.md): SOURCE=pypi:PACKAGE==VERSION, or a
# source archive's URL or path (then BUMP_ARGS="--build bNNNNN" if its name does not say).
# Re-extracts, re-applies the patches, prints the llama.h delta, then install, stubs, coverage.
bump-llama: $(VENV_DEP)
	@test -n "$(SOURCE)" || { echo "usage: make bump-llama SOURCE=pypi:xllamacpp==VERSION | SOURCE=path/or/url.tar.gz"; exit 2; }
	$(PY) vendor/llama.cpp/sync.py --bump "$(SOURCE)" $(BUMP_ARGS)

# libmtmd against llama.cpp's own implementation: llama-mtmd-cli, built into the extension's
# build dir from the same tree and libraries (it compiles all of upstream's common/: minutes),
# must give the same image tokens, embeddings and greedy reply (tests/test_mtmd_reference.py).
mtmd-check: install
	$(PY) -c "import sys; sys.path.insert(0, '.'); from tests.support import mtmd_cli; print(mtmd_cli.build())"
	$(PY) -m pytest -q tests/test_mtmd_reference.py

# Benchmarks against native llama.cpp (and llama-cpp-python when build/lcp-venv exists),
# then the server against llama-server (built from vendor/llama.cpp into build/llama-server),
# quiet and beside one CPU-bound process,
# then speculative decoding against plain decoding (bench/speculative.py), then decoding
# from other threads against the main thread (bench/threads.py, one process per case);
# see docs/benchmarks.md. Not part of the test command.
bench: install
	$(PY) -m pip install -q --no-build-isolation -e ".[test,bench]"
	$(PY) bench/run.py --update-docs
	$(PY) bench/serve.py --update-docs
	$(PY) bench/serve.py --contention
	$(PY) bench/speculative.py --update-docs
	$(PY) bench/threads.py --contention

# The test suite under AddressSanitizer + UBSan: its own build (build/asan) and an
# isolated venv (an editable llamanb elsewhere must not shadow the instrumented one).
ASAN_VENV = build/asan-venv
asan:
	rm -rf $(ASAN_VENV) && $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip install -q $(BUILD_DEPS)
	$(ASAN_VENV)/bin/python -m pip install -q --no-build-isolation ".[test]" \
	    -Cbuild-dir=build/asan -Ccmake.define.LLAMANB_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo -Cinstall.strip=false
	cd build && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ../$(ASAN_VENV)/bin/python -m pytest -q -p no:cacheprovider ../tests -k "not mypy and not stub and not leak and not ships"

# Coverage-guided fuzzing (atheris + libFuzzer over an ASan, clang build in build/fuzz,
# its own venv): GGUF files (reader, vocabulary, full load), grammars, JSON schemas and
# chat templates. FUZZ_RUNS executions per target; crashes land in build/fuzz-out/.
# tests/fuzz/README.md says how to keep a crash as a regression case.
FUZZ_VENV = build/fuzz-venv
FUZZ_RUNS ?= 100000
FUZZ_TARGETS ?= gguf_reader vocab model grammar json_schema chat_template
fuzz:
	test -x $(FUZZ_VENV)/bin/python || $(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install -q $(BUILD_DEPS) atheris
	CC=clang CXX=clang++ $(FUZZ_VENV)/bin/python -m pip install -q --no-build-isolation ".[test]" \
	    -Cbuild-dir=build/fuzz -Ccmake.define.LLAMANB_FUZZ=ON -Ccmake.build-type=RelWithDebInfo -Cinstall.strip=false
	for t in $(FUZZ_TARGETS); do \
	    LD_PRELOAD="$$($(FUZZ_VENV)/bin/python -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
	    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
	    $(FUZZ_VENV)/bin/python tests/fuzz/run.py $$t -runs=$(FUZZ_RUNS) || exit 1; \
	done

clean:
	rm -rf build
