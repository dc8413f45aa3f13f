# Two commands matter: `make demo` (generate text with the default model) and
# `make test` (the full suite: pytest on the real model, mypy --strict, stub freshness).
PYTHON ?= python3
BUILD_DEPS = "scikit-build-core>=0.11" "nanobind==3.1.0" "cmake>=3.21" ninja numpy
TEST_DEPS = "pytest>=8" "mypy>=1.10" "gguf>=0.10"

.PHONY: install demo test stubs native-bench clean

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
	$(PYTHON) cmake/stubgen.py "$$($(PYTHON) -c 'import llamanb.core as c; print(c.__file__)')" stubs/llamanb/core.pyi

clean:
	rm -rf build
