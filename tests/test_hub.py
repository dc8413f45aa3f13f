"""Models from the Hugging Face Hub (``hf://``, ``Llama.from_pretrained``) via huggingface_hub.

There is no network to huggingface.co here, so a small local HTTP server speaks the Hub
endpoints huggingface_hub calls (HEAD/GET ``/{repo}/resolve/{revision}/{file}`` with the
``X-Repo-Commit``/``ETag``/``X-Linked-*`` headers it reads, ``GET /api/models/{repo}/tree/
{revision}`` for the listing) and serves the real SmolLM2 GGUF, plus a real 3-part split
of it written by llama.cpp's ``gguf`` package. huggingface_hub itself downloads and fills
its cache; llama.cpp loads what it wrote.
"""

from __future__ import annotations

import filecmp
import hashlib
import http.server
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

import llamanb
from llamanb import hub
from llamanb.models import _sha256  # the sha256 huggingface_hub names blobs after

REPO = "test-org/smollm2"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
SPLIT = [f"split/SmolLM2-135M-Instruct.Q4_1-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
COMMIT = hashlib.sha1(b"llamanb test commit").hexdigest()
PROMPT = "The capital of France is"


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    sha256: str  # the LFS oid: huggingface_hub names cached blobs after it


def _write_split(src: Path, out_dir: Path, parts: int) -> None:
    """A real split GGUF of ``src``, as llama.cpp's converters write one (gguf-py)."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch is not None
    writer = gguf.GGUFWriter(
        out_dir / "SmolLM2-135M-Instruct.Q4_1.gguf", arch.contents(), split_max_tensors=-(-len(reader.tensors) // parts)
    )
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        writer.add_key_value(
            field.name, field.contents(), kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        )
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def repo_files(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Entry]:
    pytest.importorskip("gguf")
    root = tmp_path_factory.mktemp("hub-repo")
    (root / "split").mkdir()
    _write_split(model_path, root / "split", parts=3)
    (root / "README.md").write_text("# smollm2\nSmolLM2-135M-Instruct, Q4_1, for llamanb's tests.\n")
    paths = {MODEL: model_path, "README.md": root / "README.md", **{name: root / name for name in SPLIT}}
    return {name: Entry(p, p.stat().st_size, _sha256(p)) for name, p in paths.items()}


class HubServer:
    """The few Hub endpoints huggingface_hub uses to list and download a model repo."""

    def __init__(self, files: dict[str, Entry]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                server.handle(self, body=False)

            def do_GET(self) -> None:
                server.handle(self, body=True)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.handler = Handler
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache = Path()  # huggingface_hub's default cache while the module runs

    def start(self) -> None:
        """Serve (again, on the same port)."""
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Close the port: connections are refused, as with no network."""
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()

    def handle(self, req: http.server.BaseHTTPRequestHandler, *, body: bool) -> None:
        path = urlsplit(req.path).path
        self.requests.append(f"{req.command} {path}")
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            repo, revision = "/".join(parts[2:4]), parts[5]
            if self._check(req, repo, revision):
                self._json(req, body, self._tree())
        elif parts[:2] == ["api", "models"] and (len(parts) == 4 or len(parts) == 6 and parts[4] == "revision"):
            repo, revision = "/".join(parts[2:4]), parts[5] if len(parts) == 6 else "main"
            if self._check(req, repo, revision):
                self._json(req, body, self._info())
        elif len(parts) >= 5 and parts[2] == "resolve":
            repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            if self._check(req, repo, revision):
                self._resolve(req, name, body)
        else:
            self._error(req, 404, "")

    def _check(self, req: http.server.BaseHTTPRequestHandler, repo: str, revision: str) -> bool:
        if repo != REPO:
            self._error(req, 404, "RepoNotFound")
            return False
        if revision not in ("main", COMMIT):
            self._error(req, 404, "RevisionNotFound")
            return False
        return True

    def _error(self, req: http.server.BaseHTTPRequestHandler, status: int, code: str) -> None:
        req.send_response(status)
        if code:
            req.send_header("X-Error-Code", code)
            req.send_header("X-Error-Message", code)
        if code == "EntryNotFound":
            req.send_header("X-Repo-Commit", COMMIT)
        req.send_header("Content-Length", "0")
        req.end_headers()

    def _resolve(self, req: http.server.BaseHTTPRequestHandler, name: str, body: bool) -> None:
        entry = self.files.get(name)
        if entry is None:
            self._error(req, 404, "EntryNotFound")
            return
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(entry.size))
        req.send_header("ETag", f'"{entry.sha256}"')
        req.send_header("X-Linked-Etag", f'"{entry.sha256}"')
        req.send_header("X-Linked-Size", str(entry.size))
        req.send_header("X-Repo-Commit", COMMIT)
        req.end_headers()
        if body:
            with entry.path.open("rb") as f:
                while block := f.read(1 << 20):
                    req.wfile.write(block)

    def _info(self) -> dict[str, Any]:
        return {
            "_id": "0" * 24,
            "id": REPO,
            "modelId": REPO,
            "author": REPO.split("/")[0],
            "sha": COMMIT,
            "private": False,
            "gated": False,
            "disabled": False,
            "tags": ["gguf"],
            "downloads": 0,
            "likes": 0,
            "siblings": [{"rfilename": name} for name in self.files],
        }

    def _tree(self) -> list[dict[str, Any]]:
        folders = sorted({name.rsplit("/", 1)[0] for name in self.files if "/" in name})
        listing: list[dict[str, Any]] = [{"type": "directory", "oid": "0" * 40, "path": f} for f in folders]
        listing += [
            {
                "type": "file",
                "oid": hashlib.sha1(name.encode()).hexdigest(),
                "size": e.size,
                "path": name,
                "lfs": {"oid": e.sha256, "size": e.size, "pointerSize": 134},
            }
            for name, e in sorted(self.files.items())
        ]
        return listing

    def _json(self, req: http.server.BaseHTTPRequestHandler, body: bool, value: object) -> None:
        data = json.dumps(value).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if body:
            req.wfile.write(data)


@pytest.fixture(scope="module")
def hub_server(repo_files: dict[str, Entry], tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """One Hub for the module (a stable URL); huggingface_hub pointed at it."""
    if importlib.util.find_spec("huggingface_hub") is None:
        pytest.skip("huggingface_hub is not installed (pip install 'llamanb[hub]')")
    srv = HubServer(repo_files)
    srv.cache = tmp_path_factory.mktemp("hf-cache")
    with pytest.MonkeyPatch.context() as mp:
        # As a user configures it. huggingface_hub reads these when first imported (older
        # versions copy them into each module then); recent ones read `constants` at each
        # call, so patch those too in case it was imported before this module ran.
        mp.setenv("HF_ENDPOINT", srv.url)
        mp.setenv("HF_HUB_CACHE", str(srv.cache))
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        from huggingface_hub import constants

        mp.setattr(constants, "ENDPOINT", srv.url)
        mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", srv.url + "/{repo_id}/resolve/{revision}/{filename}")
        mp.setattr(constants, "HF_HUB_CACHE", str(srv.cache))
        mp.setattr(constants, "HF_HUB_OFFLINE", False)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture()
def server(hub_server: HubServer) -> HubServer:
    if not hub_server.thread.is_alive():
        hub_server.start()
    return hub_server


def _snapshot(cache: Path, name: str) -> Path:
    return cache / "models--test-org--smollm2" / "snapshots" / COMMIT / name


@pytest.fixture(scope="module")
def reference_tokens(llm: llamanb.Llama) -> list[int]:
    return llm.generate(PROMPT, max_tokens=12, temperature=0).tokens


def test_parse_uri() -> None:
    assert hub.parse_uri(f"hf://{REPO}/{MODEL}") == hub.HubFile(REPO, MODEL)
    assert hub.parse_uri(f"hf://{REPO}@v1.0/a/b/{MODEL}") == hub.HubFile(REPO, f"a/b/{MODEL}", "v1.0")
    assert hub.parse_uri(f"hf://{REPO}/*Q4_1.gguf").filename == "*Q4_1.gguf"
    assert hub.is_hub_uri(f"hf://{REPO}/{MODEL}")
    assert not hub.is_hub_uri(Path(f"hf://{REPO}/{MODEL}")) and not hub.is_hub_uri(MODEL)


@pytest.mark.parametrize(
    "uri",
    [
        "hf://",
        "hf://org",
        "hf://org/repo",
        "hf://org/repo/",
        "hf:///repo/m.gguf",
        "hf://org//m.gguf",
        "hf://org/repo/../m.gguf",
        "hf://org/repo/./m.gguf",
        "hf://org/repo@/m.gguf",
        "hf://org@main/repo/m.gguf",
    ],
)
def test_malformed_uri_raises_value_error(uri: str) -> None:
    with pytest.raises(ValueError, match="malformed model"):
        hub.parse_uri(uri)
    with pytest.raises(ValueError, match="malformed model"):  # before any download or import of huggingface_hub
        llamanb.Llama(uri)


def test_without_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # what `import` sees when it is not installed
    with pytest.raises(ImportError, match=r"pip install 'llamanb\[hub\]'"):
        llamanb.Llama(f"hf://{REPO}/{MODEL}")
    with pytest.raises(ImportError, match=r"pip install 'llamanb\[hub\]'"):
        llamanb.Llama.from_pretrained(REPO, "*.gguf")


def test_uri_loads_from_huggingface_hub_cache(
    server: HubServer, repo_files: dict[str, Entry], reference_tokens: list[int]
) -> None:
    cache = server.cache
    with llamanb.Llama(f"hf://{REPO}/{MODEL}", n_ctx=1024, n_threads=2) as llm:
        path = _snapshot(cache, MODEL)
        assert Path(llm.model.path) == path
        assert llm.generate(PROMPT, max_tokens=12, temperature=0).tokens == reference_tokens
    # huggingface_hub's layout: snapshots/<commit>/<file> -> blobs/<sha256>, refs/main = commit
    repo = cache / "models--test-org--smollm2"
    assert (repo / "refs" / "main").read_text() == COMMIT
    blob = repo / "blobs" / repo_files[MODEL].sha256
    assert path.resolve() == blob.resolve() and filecmp.cmp(blob, repo_files[MODEL].path, shallow=False)
    assert f"GET /{REPO}/resolve/main/{MODEL}" in server.requests


def test_cache_serves_when_the_hub_is_gone(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "own-cache"
    first = hub.download(REPO, MODEL, cache_dir=cache)
    assert first == _snapshot(cache, MODEL) and first.is_file()
    assert hub.download(REPO, "*Q4_1.gguf", cache_dir=cache) == first
    server.stop()
    try:
        n = len(server.requests)
        assert hub.download(REPO, MODEL, cache_dir=cache) == first
        assert hub.resolve_uri(f"hf://{REPO}/*Q4_1.gguf", cache_dir=cache) == first  # glob: the cached snapshot
        assert hub.download(REPO, MODEL, revision=COMMIT, cache_dir=cache) == first
        assert len(server.requests) == n
    finally:
        server.start()


def test_glob_picks_exactly_one_model(server: HubServer, tmp_path: Path, reference_tokens: list[int]) -> None:
    cache = tmp_path / "own-cache"
    with llamanb.Llama.from_pretrained(REPO, "*Q4_1.gguf", cache_dir=cache, n_ctx=512, n_threads=2) as llm:
        assert Path(llm.model.path) == _snapshot(cache, MODEL) and llm.n_ctx == 512
        assert llm.generate(PROMPT, max_tokens=12, temperature=0).tokens == reference_tokens
    with pytest.raises(ValueError, match=r"no \.gguf file in 'test-org/smollm2' matches '\*Q8_0\.gguf'") as none:
        hub.download(REPO, "*Q8_0.gguf", cache_dir=cache)
    assert MODEL in str(none.value) and SPLIT[0] in str(none.value)
    with pytest.raises(ValueError, match="no .gguf file"):  # only GGUF files are candidates
        hub.download(REPO, "README*", cache_dir=cache)
    with pytest.raises(ValueError, match=r"2 models in 'test-org/smollm2' match '\*\.gguf'") as many:
        hub.download(REPO, "*.gguf", cache_dir=cache)
    assert f"{MODEL}, {SPLIT[0]}" in str(many.value) and SPLIT[1] not in str(many.value)


def test_compat_from_pretrained(server: HubServer, tmp_path: Path, reference_tokens: list[int]) -> None:
    """llama-cpp-python's ``Llama.from_pretrained`` on llamanb.compat: the same download
    into huggingface_hub's cache, the constructor's keywords passed on."""
    import itertools

    from llamanb.compat import Llama as CompatLlama

    cache = tmp_path / "compat-cache"
    with CompatLlama.from_pretrained(REPO, "*Q4_1.gguf", cache_dir=cache, n_ctx=512, n_threads=2, verbose=False) as llm:
        assert Path(llm.model_path) == _snapshot(cache, MODEL) and llm.n_ctx() == 512
        tokens = llm.tokenize(PROMPT.encode())
        assert list(itertools.islice(llm.generate(tokens, temp=0.0), len(reference_tokens))) == reference_tokens
    with CompatLlama.from_pretrained(REPO, SPLIT[0], cache_dir=cache, n_ctx=256, verbose=False) as split:
        assert Path(split.model_path) == _snapshot(cache, SPLIT[0]) and split.n_ctx() == 256
        assert all(_snapshot(cache, name).is_file() for name in SPLIT)
    with pytest.raises(NotImplementedError, match="cache_dir"):
        CompatLlama.from_pretrained(REPO, MODEL, local_dir=tmp_path / "here")
    with pytest.raises(ValueError, match="2 models"):
        CompatLlama.from_pretrained(REPO, "*.gguf", cache_dir=cache)


def test_split_model_downloads_every_part(server: HubServer, tmp_path: Path, reference_tokens: list[int]) -> None:
    cache = tmp_path / "own-cache"
    first = hub.download(REPO, "split/*.gguf", cache_dir=cache)  # three parts, one model
    assert first == _snapshot(cache, SPLIT[0])
    assert all(_snapshot(cache, name).is_file() for name in SPLIT)
    with llamanb.Llama(f"hf://{REPO}/{SPLIT[0]}", n_ctx=1024, n_threads=2) as llm:  # the default cache
        assert Path(llm.model.path) == _snapshot(server.cache, SPLIT[0])
        assert llm.generate(PROMPT, max_tokens=12, temperature=0).tokens == reference_tokens


def test_revisions(server: HubServer, tmp_path: Path) -> None:
    errors = importlib.import_module("huggingface_hub.utils")  # where old and new versions both have them

    readme = hub.resolve_uri(f"hf://{REPO}@{COMMIT}/README.md", cache_dir=tmp_path)
    assert readme == _snapshot(tmp_path, "README.md") and readme.read_text().startswith("# smollm2")
    with pytest.raises(errors.RevisionNotFoundError):
        hub.resolve_uri(f"hf://{REPO}@nope/README.md", cache_dir=tmp_path)
    with pytest.raises(errors.EntryNotFoundError):
        hub.download(REPO, "missing.gguf", cache_dir=tmp_path)


def test_hf_endpoint_variable(server: HubServer, tmp_path: Path) -> None:
    """HF_ENDPOINT and HF_HUB_CACHE, as a user sets them, in a fresh interpreter."""
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "env-cache")}
    code = f"from llamanb import hub; print(hub.resolve_uri('hf://{REPO}/README.md'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == _snapshot(tmp_path / "env-cache", "README.md")
    assert f"GET /{REPO}/resolve/main/README.md" in server.requests


def test_huggingface_hub_loads_only_when_used() -> None:
    code = (
        "import sys, llamanb; llamanb.Llama; from llamanb import hub; hub.parse_uri('hf://a/b/c.gguf'); "
        "print('huggingface_hub' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"


def test_cli_takes_hub_uris(server: HubServer, tmp_path: Path) -> None:
    """`llamanb info --model hf://...` and `generate` resolve through the cache, in a fresh interpreter."""
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "cli-cache")}
    out = subprocess.run(
        [sys.executable, "-m", "llamanb", "info", "--model", f"hf://{REPO}/{MODEL}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"path:        {_snapshot(tmp_path / 'cli-cache', MODEL)}" in out.stdout
