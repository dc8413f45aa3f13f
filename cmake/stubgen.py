"""Write the stubs of a built llamanb.core with nanobind's stubgen.

    python cmake/stubgen.py PATH/TO/core.*.so OUTPUT_DIR

writes OUTPUT_DIR/core/__init__.pyi plus one .pyi per submodule (common, fast, ggml,
gguf, mtmd, server), the layout type checkers expect for an extension module with
submodules (nanobind's recursive stubgen writes them).

Loads the extension straight from its file under the name ``llamanb.core`` (so
neither the facade nor an installed llamanb is imported), then runs stubgen with
its command-line defaults. CMake runs it after every build of the module; the
tests run it on the installed module and compare with stubs/llamanb/core/.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from nanobind.stubgen import StubGen


def main() -> int:
    so_path, out_dir = sys.argv[1], Path(sys.argv[2])
    out_path = out_dir / "core" / "__init__.pyi"
    spec = importlib.util.spec_from_file_location("llamanb.core", so_path)
    assert spec is not None and spec.loader is not None, so_path
    module = importlib.util.module_from_spec(spec)
    sys.modules["llamanb.core"] = module
    spec.loader.exec_module(module)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    stubgen = StubGen(module=module, quiet=True, recursive=True, output_file=out_path)
    stubgen.put(module)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(stubgen.get(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
