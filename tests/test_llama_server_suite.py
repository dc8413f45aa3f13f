"""llama-server's own test suite (tools/server/tests of the pinned tree) against
``llamanb serve``: a representative part of it, the files of REPRESENTATIVE, every test
in them but those listed in tests/llama_server_suite/excluded.txt (each with its
reason). ``make conformance`` runs all of it."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .llama_server_suite import runner
from .support.server_process import free_port

REPRESENTATIVE = (
    "unit/test_security.py",
    "unit/test_tokenize.py",
    "unit/test_basic.py",
    "unit/test_ignore_eos.py",
    "unit/test_proxy.py",
    "unit/test_compat_gcp.py",  # Vertex AI's route (src/llamanb/server/vertex.py)
)


@pytest.mark.slow  # part of llama-server's own suite, each test file with its own server
@pytest.mark.skipif(not (runner.SUITE / "utils.py").is_file(), reason="the pinned tree has no tools/server/tests")
def test_llama_server_suite_passes(model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", str(free_port()))
    report = tmp_path / "suite.xml"
    code = runner.run(
        [*REPRESENTATIVE, "-q", "-rf", f"--junitxml={report}"],
        model_path,
        runner.synthetic_mmproj(model_path, tmp_path),
    )
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    print(f"llama-server's suite ({', '.join(REPRESENTATIVE)}): {counts}", file=sys.stderr)
    assert code == 0 and counts["failures"] == 0 and counts["errors"] == 0, counts
    assert counts["tests"] - counts["skipped"] >= 25, counts  # the part run is not empty
