"""The stage cache's remote mirror on an fsspec URL (``s3://``, ``gs://``, ``file://``, ``memory://``, ...).

Stages are computed into, and read from, a local working cache (``StageCache.root``); this layer copies
finished entries between it and the remote: on a local miss it downloads a complete remote entry, and
after a local compute it uploads the new one. Object stores cannot rename a folder atomically, so an
entry is committed in two steps: every file of ``<kind>/<digest>/`` is uploaded first, then the marker
``<kind>/<digest>/_COMPLETE`` (a manifest: each file's name and size) is written last. A remote entry
without its marker (an uploader killed mid-upload) does not exist for readers, and the next uploader of
that stage writes it again. Two uploaders of one stage write the same files (same key, same computation),
so their race is harmless; a reader checks each downloaded file's size against the manifest and never
publishes a torn copy. A download lands in a temporary folder that becomes the local entry in one rename.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path, PurePosixPath
from typing import Any

from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.faults import fault_point
from w2sbench.files import atomic_directory, global_cache_dir
from w2sbench.jsonio import loads_strict

__all__ = ["RemoteMirror", "MARKER", "LOCAL_CACHE_ENV", "default_local_root"]

MARKER = "_COMPLETE"
LOCAL_CACHE_ENV = "W2SBENCH_LOCAL_CACHE"
_CREDENTIALS = (
    "Check the URL and the credentials fsspec uses for it (s3://: AWS_PROFILE or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY; gs://: GOOGLE_APPLICATION_CREDENTIALS); docs/scale-out.md has the details."
)


def default_local_root() -> Path:
    """This machine's working copy of remote stage caches: ``$W2SBENCH_LOCAL_CACHE``, else ``<W2SBENCH_CACHE>/stages``."""
    if os.environ.get(LOCAL_CACHE_ENV):
        return Path(os.environ[LOCAL_CACHE_ENV])

    return global_cache_dir() / "stages"


class _Torn(Exception):
    """A downloaded file does not match the manifest (another uploader is rewriting it)."""


class RemoteMirror:
    """Download and upload whole stage entries under one fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self._root = _open(self.url)
        self._complete: set[str] = set()  # entries this process saw complete on the remote
        self._broken: set[str] = set()  # entries whose marker names a missing or different file

    def _entry(self, kind: str, digest: str) -> str:
        return posixpath.join(self._root, kind, digest)

    def manifest(self, kind: str, digest: str) -> dict[str, int] | None:
        """The remote entry's files and sizes, or None when it is not complete (no or unreadable marker)."""
        try:
            raw = self.fs.cat_file(posixpath.join(self._entry(kind, digest), MARKER))
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - any backend's failure becomes one clear message
            raise self._error("read", kind, digest, exc) from exc
        try:
            files = loads_strict(raw)["files"]
        except (ValueError, KeyError, TypeError):
            return None  # a marker still being written (a POSIX-like backend): not complete yet
        if not isinstance(files, dict) or "key.json" not in files:
            return None
        if not all(_safe_name(n) and isinstance(s, int) for n, s in files.items()):
            return None
        return files

    def download(self, kind: str, digest: str, target: Path) -> bool:
        """Copy the complete remote entry into ``target`` (in one rename); False when there is none."""
        files = self.manifest(kind, digest)
        if files is None:
            return False
        entry = self._entry(kind, digest)
        try:
            with atomic_directory(target) as tmp:
                for name, size in sorted(files.items()):
                    local = tmp.joinpath(*PurePosixPath(name).parts)
                    local.parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(posixpath.join(entry, name), str(local))
                    if local.stat().st_size != size:
                        raise _Torn(name)
        except (_Torn, FileNotFoundError):
            self._broken.add(f"{kind}/{digest}")  # its next upload rewrites it, marker included
            return False  # rewritten or removed while we read it: compute the stage instead
        except W2SBenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error("download", kind, digest, exc) from exc
        self._complete.add(f"{kind}/{digest}")
        return True

    def upload(self, kind: str, digest: str, source: Path) -> None:
        """Make the local entry ``source`` complete on the remote: its files first, the marker last.

        Nothing is sent when the remote entry is already complete (checked once per entry and process),
        unless a download found it broken.
        """
        if f"{kind}/{digest}" in self._complete:
            return
        entry = self._entry(kind, digest)
        try:
            if f"{kind}/{digest}" in self._broken or self.manifest(kind, digest) is None:
                files = {
                    p.relative_to(source).as_posix(): p.stat().st_size
                    for p in sorted(source.rglob("*"))
                    if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
                }
                for folder in sorted({posixpath.dirname(posixpath.join(entry, n)) for n in files}):
                    self.fs.makedirs(folder, exist_ok=True)
                for name in files:
                    self.fs.put_file(str(source / name), posixpath.join(entry, name))
                fault_point("remote-before-marker")  # every file is up, the entry is not complete yet
                marker = json.dumps({"files": files}, sort_keys=True).encode()
                self.fs.pipe_file(posixpath.join(entry, MARKER), marker)
        except W2SBenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error("upload", kind, digest, exc) from exc
        self._broken.discard(f"{kind}/{digest}")
        self._complete.add(f"{kind}/{digest}")

    def _error(self, what: str, kind: str, digest: str, exc: BaseException) -> W2SBenchError:
        return W2SBenchError(
            f'Could not {what} the stage {kind}/{digest} at "{self.url}": {type(exc).__name__}: {exc}',
            f"{_CREDENTIALS} Finished stages are cached; rerun the same command to resume.",
        )


def _safe_name(name: Any) -> bool:
    """A manifest entry names a file inside the entry (no absolute paths, no ``..``)."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _open(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and root path of ``url``, probed once; every failure is a W2SBenchError."""
    import fsspec.core
    from fsspec.registry import known_implementations, registry

    protocol = url.split("://", 1)[0].split("::")[-1]
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        spec = known_implementations.get(protocol, {})
        package = str(spec.get("class", "")).split(".")[0]
        if package and package != "fsspec":
            fix = f"Install it with: pip install {package}"
            problem = f'The stage cache "{url}" needs the {package} package for {protocol}:// URLs, and it is not installed.'
        else:
            fix = str(spec.get("err") or exc)
            problem = f'The stage cache "{url}" needs an optional package for {protocol}:// URLs: {exc}'
        raise W2SBenchError(problem, fix) from None
    except ValueError as exc:
        known = set(known_implementations) | set(registry)
        if protocol not in known:
            raise W2SBenchError(
                f'The stage cache "{url}" uses the unknown protocol "{protocol}://".' + did_you_mean(protocol, known),
                "Pass a local folder or an fsspec URL such as s3://bucket/prefix, gs://bucket/prefix or file:///abs/path.",
            ) from None
        raise W2SBenchError(f'Cannot open the stage cache "{url}": {exc}', _CREDENTIALS) from None
    except Exception as exc:  # noqa: BLE001
        raise W2SBenchError(f'Cannot open the stage cache "{url}": {type(exc).__name__}: {exc}', _CREDENTIALS) from None
    try:
        fs.exists(root)  # fail here, before any training, when the storage cannot be reached
    except Exception as exc:  # noqa: BLE001
        raise W2SBenchError(f'Cannot reach the stage cache "{url}": {type(exc).__name__}: {exc}', _CREDENTIALS) from None
    return fs, root.rstrip("/") or "/"
