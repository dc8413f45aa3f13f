"""llama.cpp's log through Python logging: silent by default, visible when verbose,
and a tqdm bar while loading on request."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import llamanb


def test_logger_has_a_null_handler() -> None:
    logger = logging.getLogger("llamanb")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_messages_reach_the_logger(model_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="llamanb")
    with llamanb.Llama(model_path, n_ctx=128, n_threads=2):
        pass
    records = [r for r in caplog.records if r.name == "llamanb"]
    assert any("llama_model_loader" in r.getMessage() for r in records)
    assert any(r.levelno == logging.INFO for r in records)
    assert all("\n" not in r.getMessage() for r in records)  # whole lines, one record each


def run_program(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True, text=True, timeout=600)


def test_silent_by_default(model_path: Path) -> None:
    proc = run_program(f"""
        import llamanb
        llm = llamanb.Llama({str(model_path)!r}, n_ctx=128, n_threads=2)
        print(llm.generate("Hi", max_tokens=2, temperature=0).finish_reason)
    """)  # (not even closed: handles freed at exit stay quiet too)
    assert proc.returncode == 0 and proc.stdout.strip() == "length"
    assert proc.stderr == ""


def test_verbose_shows_the_log_while_open(model_path: Path) -> None:
    proc = run_program(f"""
        import logging, llamanb
        with llamanb.Llama({str(model_path)!r}, n_ctx=128, n_threads=2, verbose=True):
            pass
        logger = logging.getLogger("llamanb")
        print(len(logger.handlers), logger.level)
        llamanb.Llama({str(model_path)!r}, n_ctx=128, n_threads=2).close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "llama_model_loader" in proc.stderr and "llama_context" in proc.stderr
    assert proc.stderr.count("llama_model_loader: loaded meta data") == 1  # the second, quiet Llama logged nothing
    assert proc.stdout.split() == ["1", "0"]  # back to the NullHandler and the old level


def test_application_logging_config_applies(model_path: Path) -> None:
    proc = run_program(f"""
        import logging, sys, llamanb
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("llamanb").setLevel(logging.INFO)
        llamanb.Llama({str(model_path)!r}, n_ctx=128, n_threads=2).close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "llamanb INFO llama_model_loader" in proc.stdout and proc.stderr == ""


def test_progress_bar(model_path: Path) -> None:
    proc = run_program(f"""
        import llamanb
        llamanb.Llama({str(model_path)!r}, n_ctx=128, n_threads=2, progress=True).close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "loading SmolLM2-135M-Instruct.Q4_1" in proc.stderr and "/100 [" in proc.stderr  # a tqdm bar
    assert "llama_model_loader" not in proc.stderr  # the bar, not the log
