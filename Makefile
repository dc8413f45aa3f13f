# Two commands matter: `make demo` (generate text with the default model) and
# `make test` (the full suite: pytest on the real model, mypy --strict, stub freshness).
PYTHON ?= python3
BUILD_DEPS = "scikit-build-core>=0.11" "nanobind==3.1.0" "cmake>=3.21" ninja numpy
TEST_DEPS = "pytest>=8" "mypy>=1.10" "gguf>=0.10" "jinja2>=3.1" "starlette>=0.37" "uvicorn>=0.30" "openai>=1.40" "httpx>=0.27" "jsonschema>=4" "tqdm>=4" "huggingface_hub>=0.23"

.PHONY: install demo test stubs asan bench clean

# Editable build into the persistent build/<wheel_tag> dir (incremental, ccache when present).
install:
	$(PYTHON) -m pip install -q $(BUILD_DEPS) $(TEST_DEPS)
	$(PYTHON) -m pip install -q --no-build-isolation -e .

demo: install
	$(PYTHON) -m llamanb generate "The three primary colors are" --max-tokens 64 --seed 42

test: install
	$(PYTHON) -m pytest -q tests

# Regenerate the committed stubs from the built module (commit the result).
stubs:
	$(PYTHON) cmake/stubgen.py "$$($(PYTHON) -c 'import llamanb.core as c; print(c.__file__)')" stubs/llamanb

# Benchmarks against native llama.cpp (and llama-cpp-python when build/lcp-venv exists);
# see docs/benchmarks.md. Not part of the test command.
bench: install
	$(PYTHON) bench/run.py --update-docs

# The test suite under AddressSanitizer + UBSan: its own build (build/asan) and an
# isolated venv (an editable llamanb elsewhere must not shadow the instrumented one).
ASAN_VENV = build/asan-venv
asan:
	rm -rf $(ASAN_VENV) && $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip install -q $(BUILD_DEPS) $(TEST_DEPS)
	$(ASAN_VENV)/bin/python -m pip install -q --no-build-isolation . \
	    -Cbuild-dir=build/asan -Ccmake.define.LLAMANB_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo -Cinstall.strip=false
	cd build && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ../$(ASAN_VENV)/bin/python -m pytest -q -p no:cacheprovider ../tests -k "not mypy and not stub and not leak and not ships"

clean:
	rm -rf build
