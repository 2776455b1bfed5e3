"""Where a tile store lives: a local folder or an fsspec URL (``s3://bucket/key.zarr``).

:class:`StoreLocation` is the one place that knows the difference. Local stores keep
the write-to-``NAME.tmp``-then-rename protocol (a folder at the final name is a
finished store). Object stores have no atomic rename (``mv`` is copy + delete), so a
remote store or part store is written in place and is finished once its group
attribute record exists: that record is written last, in one PUT, so a reader sees a
store either without it (unfinished: removed and redone) or complete.

URLs are anything fsspec resolves (``s3://`` through s3fs, ``gs://``, ``memory://``, a
``file://`` URL is treated as a local path); ``storage_options`` go to the fsspec
filesystem (for s3fs e.g. ``key``, ``secret``, ``endpoint_url``, ``anon``).
:func:`check_access` turns the usual failures of an object store (no credentials, a
missing bucket, access denied) into one :class:`StorageError` naming the URL and what
to set, before anything is written or read.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from geomae.errors import DataError, StorageError

__all__ = ["StorageError", "StoreLocation", "check_access", "parse_storage_options"]

log = logging.getLogger(__name__)


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def parse_storage_options(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", "client_kwargs.region_name=eu-west-1"]`` -> fsspec options.

    Dotted keys make nested dictionaries; ``true`` / ``false`` (any case) become
    booleans, every other value stays a string.

    Raises:
        DataError: naming the item that is not ``KEY=VALUE``.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"storage option {item!r} is not KEY=VALUE (e.g. endpoint_url=...)")
        parsed: Any = {"true": True, "false": False}.get(value.strip().lower(), value)
        target = options
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = parsed
    return options


@dataclass(frozen=True)
class StoreLocation:
    """A store folder, local or remote.

    Attributes:
        url: the local path (as a string) or the fsspec URL, without a trailing ``/``.
        storage_options: fsspec filesystem options (remote only).
    """

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(
        cls, path: str | Path | StoreLocation, storage_options: Mapping[str, Any] | None = None
    ) -> StoreLocation:
        """A location from a path, a URL or a location (returned as is)."""
        if isinstance(path, StoreLocation):
            return path
        text = str(path)
        if text.startswith("file://"):
            text = text.removeprefix("file://")
        if not _is_url(text):
            if storage_options:
                log.warning("storage options %s ignored for local path %s", storage_options, text)
            return cls(str(Path(text)))
        return cls(text.rstrip("/"), dict(storage_options or {}))

    @property
    def is_local(self) -> bool:
        """True for a folder on a local (or mounted) filesystem."""
        return not _is_url(self.url)

    @property
    def local_path(self) -> Path:
        """The folder of a local location."""
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local path")
        return Path(self.url)

    def __str__(self) -> str:
        """The path or URL."""
        return self.url

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of a remote location (cached by fsspec per process)."""
        import fsspec

        filesystem, _ = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
        return filesystem

    @property
    def _fs_path(self) -> str:
        import fsspec

        _, path = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
        return str(path)

    def child(self, name: str) -> StoreLocation:
        """The location ``name`` inside this one."""
        if self.is_local:
            return StoreLocation(str(self.local_path / name))
        return StoreLocation(f"{self.url}/{name}", self.storage_options)

    def with_suffix(self, suffix: str) -> StoreLocation:
        """This location with ``suffix`` appended to its name (``x.zarr`` -> ``x.zarr.tmp``)."""
        return StoreLocation(self.url + suffix, self.storage_options)

    def _refresh(self) -> None:
        if not self.is_local:
            self.fs.invalidate_cache()  # other processes write here: no stale listings

    def exists(self) -> bool:
        """True if the folder (or object prefix) exists."""
        if self.is_local:
            return self.local_path.exists()
        self._refresh()
        return bool(self.fs.exists(self._fs_path))

    def has_file(self, name: str) -> bool:
        """True if the file ``name`` exists inside this location."""
        if self.is_local:
            return (self.local_path / name).is_file()
        self._refresh()
        return bool(self.fs.isfile(f"{self._fs_path}/{name}"))

    def names(self) -> list[str]:
        """Names of the entries directly inside this location (sorted; none if absent)."""
        if self.is_local:
            path = self.local_path
            return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        self._refresh()
        if not self.fs.exists(self._fs_path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self._fs_path))

    def makedirs(self) -> None:
        """Create the folder (a no-op on object stores, which have no folders)."""
        if self.is_local:
            self.local_path.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Delete the folder and everything in it (nothing if it does not exist)."""
        if self.is_local:
            if self.local_path.is_dir():
                shutil.rmtree(self.local_path)
            elif self.local_path.exists():
                self.local_path.unlink()
            return
        self._refresh()
        if self.fs.exists(self._fs_path):
            self.fs.rm(self._fs_path, recursive=True)

    def rename(self, target: StoreLocation) -> None:
        """Move a local folder to ``target`` (replacing it); local locations only."""
        target.remove()
        self.local_path.rename(target.local_path)

    def zarr_store(self, *, read_only: bool) -> Any:
        """What ``zarr.open_group`` takes for this location (a path or an FsspecStore)."""
        if self.is_local:
            return str(self.local_path)
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(
            self.url, storage_options=dict(self.storage_options), read_only=read_only
        )

    def open_group(self, mode: str) -> zarr.Group:
        """The zarr (format 3) group here, opened with ``mode`` (``r``, ``r+``, ``w``)."""
        store = self.zarr_store(read_only=mode == "r")
        if mode == "w":
            return zarr.open_group(store, mode="w", zarr_format=3)
        return zarr.open_group(store, mode=mode)  # type: ignore[arg-type]


_CREDENTIAL_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
    "--storage-option key=... --storage-option secret=... (storage_options={'key': ..., "
    "'secret': ...}; anon=true for a public bucket)"
)


def _reason(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def check_access(location: StoreLocation, *, for_writing: bool) -> None:
    """Fail early, naming the URL, if a remote location cannot be used.

    Before a write, lists the bucket (the first component of the URL's path): that
    needs credentials (unless ``anon``) and an existing bucket. Before a read, asks for
    the store's ``zarr.json`` (read-only credentials may not list the bucket); a missing
    object is left to the reader's own "does not exist". Local locations are not
    checked here.

    Args:
        location: the store (or parts) location.
        for_writing: the store is about to be written (the message says so).

    Raises:
        StorageError: no credentials were found, the bucket does not exist, access is
            denied, or the endpoint cannot be reached.
    """
    if location.is_local:
        return
    what = "write" if for_writing else "read"
    fs = location.fs
    bucket = location._fs_path.split("/", 1)[0]
    fs.invalidate_cache()
    try:
        if for_writing:
            fs.ls(bucket)
        else:
            fs.info(f"{location._fs_path}/zarr.json")
    except FileNotFoundError as err:
        if not for_writing:
            return
        raise StorageError(
            f"cannot {what} {location.url}: bucket {bucket!r} does not exist ({_reason(err)}); "
            "create it first (or correct the URL / --storage-option endpoint_url)"
        ) from None
    except PermissionError as err:
        raise StorageError(
            f"cannot {what} {location.url}: access to bucket {bucket!r} denied "
            f"({_reason(err)}); check the credentials' permissions"
        ) from None
    except Exception as err:
        if "NoCredentials" in type(err).__name__ or "credentials" in str(err).lower():
            raise StorageError(
                f"cannot {what} {location.url}: no credentials found; {_CREDENTIAL_HINT}"
            ) from None
        raise StorageError(
            f"cannot {what} {location.url}: {_reason(err)} (check the URL and "
            "--storage-option endpoint_url)"
        ) from err
