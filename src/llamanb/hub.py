"""GGUF models on the Hugging Face Hub, resolved to local files by ``huggingface_hub``.

``Llama("hf://org/repo/path/file.gguf")`` and ``Llama.from_pretrained("org/repo",
filename="*Q4_1.gguf")`` land here. Files go to huggingface_hub's cache (``HF_HUB_CACHE``,
or ``cache_dir=``), in its layout, and are read from there once downloaded, also with no
network (huggingface_hub falls back to the cache; a glob is then matched against the
cached snapshot). ``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` apply as usual.

huggingface_hub is optional (``pip install 'llamanb[hub]'``) and imported only here, on
first use.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

logger = logging.getLogger("llamanb")

PREFIX = "hf://"
_GLOB_CHARS = frozenset("*?[")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# llama.cpp's split naming (llama_split_path): <prefix>-00001-of-00003.gguf
_SPLIT = re.compile(r"(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf")


@dataclass(frozen=True)
class HubFile:
    """A file (or a glob) in a model repository on the Hub."""

    repo_id: str
    filename: str
    revision: str | None = None


def is_hub_uri(model_path: object) -> TypeGuard[str]:
    """Whether ``model_path`` is an ``hf://`` string."""
    return isinstance(model_path, str) and model_path.startswith(PREFIX)


def parse_uri(uri: str) -> HubFile:
    """``hf://org/repo[@revision]/path/in/repo.gguf`` → :class:`HubFile`.

    The file part may be a glob (``hf://org/repo/*Q4_1.gguf``). Raises ``ValueError``
    for anything else.
    """
    if not uri.startswith(PREFIX):
        raise ValueError(f"not an hf:// model: {uri!r}")
    parts = uri[len(PREFIX) :].split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"malformed model {uri!r}: expected hf://org/repo[@revision]/path/to/file.gguf")
    org, repo, path = parts[0], parts[1], "/".join(parts[2:])
    revision: str | None = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
        if not repo or not revision:
            raise ValueError(f"malformed model {uri!r}: expected hf://org/repo@revision/path/to/file.gguf")
    if "@" in org:
        raise ValueError(f"malformed model {uri!r}: '@revision' goes after the repository name")
    return HubFile(f"{org}/{repo}", path, revision)


def resolve_uri(uri: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Local path of the model an ``hf://`` URI names, downloading it if needed."""
    ref = parse_uri(uri)
    return download(ref.repo_id, ref.filename, revision=ref.revision, cache_dir=cache_dir)


def download(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Local path of ``filename`` in the Hub repository ``repo_id``, downloaded once.

    ``filename`` may be a glob (``"*Q4_1.gguf"``, matched with :func:`fnmatch.fnmatchcase`
    against the repository's ``.gguf`` files; ``*`` crosses folders): exactly one model
    must match, else ``ValueError`` lists the candidates. The parts of a split model
    (``name-00001-of-00003.gguf``, …) count as one model: all are downloaded and the
    first is returned (llama.cpp finds the others next to it).
    """
    if not filename or filename.startswith("/"):
        raise ValueError(f"expected a file path inside {repo_id!r}, got {filename!r}")
    _require_hub()
    from huggingface_hub import hf_hub_download

    if _GLOB_CHARS.intersection(filename):
        files = _list_files(repo_id, revision, cache_dir)
        filename = _pick(repo_id, filename, [f for f in files if f.endswith(".gguf")])
    parts = [filename]
    split = _SPLIT.fullmatch(filename)
    if split is not None:
        count = int(split["count"])
        parts = [f"{split['prefix']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    cache = os.fspath(cache_dir) if cache_dir is not None else None
    paths = [Path(hf_hub_download(repo_id, part, revision=revision, cache_dir=cache)) for part in parts]
    return paths[0]


def _pick(repo_id: str, pattern: str, files: list[str]) -> str:
    matches = sorted(f for f in files if fnmatch.fnmatchcase(f, pattern))
    models = sorted({_first_part(f) for f in matches})
    if len(models) == 1:
        return models[0]
    if not models:
        listing = ", ".join(sorted(files)) or "none"
        raise ValueError(f"no .gguf file in {repo_id!r} matches {pattern!r}; its .gguf files: {listing}")
    raise ValueError(f"{len(models)} models in {repo_id!r} match {pattern!r}, name one: {', '.join(models)}")


def _first_part(filename: str) -> str:
    split = _SPLIT.fullmatch(filename)
    if split is None:
        return filename
    return f"{split['prefix']}-00001-of-{split['count']}.gguf"


def _list_files(repo_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None) -> list[str]:
    """The repository's files; the cached snapshot's when the Hub cannot be reached.

    Like huggingface_hub's ``snapshot_download``: ``model_info`` first (one request, no
    retries, so being offline shows at once), then the listing at the commit it names.
    """
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        commit = api.model_info(repo_id, revision=revision).sha
    except Exception as err:  # offline, Hub down, private repo without a token, ...: try the cache
        cached = _cached_files(repo_id, revision, cache_dir)
        if cached is None:
            raise
        logger.warning("cannot reach %s on the Hub (%s); using its cached snapshot", repo_id, type(err).__name__)
        return cached
    return api.list_repo_files(repo_id, revision=commit or revision)


def _cached_files(repo_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None) -> list[str] | None:
    """Files of ``repo_id`` at ``revision`` in huggingface_hub's cache, or None if it has none."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()
    repo = root / repo_folder_name(repo_id=repo_id, repo_type="model")
    revision = revision or "main"
    commit = revision
    if not _COMMIT.fullmatch(revision):
        ref = repo / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = repo / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    return sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())


def _require_hub() -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as err:
        raise ModuleNotFoundError(
            "models from the Hugging Face Hub need huggingface_hub: pip install 'llamanb[hub]'", name="huggingface_hub"
        ) from err
