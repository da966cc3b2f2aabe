"""Where raw files come from and artifacts go: Cloud Storage in the cloud, a folder locally.

Both stores offer the same few operations. A rejected file is never deleted: its reason is
recorded on the object (metadata in Cloud Storage, a `.rejected.json` file beside it locally) and
in the warehouse's quarantine table by the import step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

READY_MARKER = "_READY"
REJECTED_KEY = "retailopt-rejected"


class ObjectStore(Protocol):
    name: str  # the bucket name events and messages refer to
    location: str  # where a person finds the objects (gs://bucket or a folder)

    def list(self, prefix: str) -> list[str]: ...

    def download_prefix(self, prefix: str, dest: Path) -> list[Path]: ...

    def upload_dir(self, src: Path, prefix: str) -> list[str]: ...

    def mark_rejected(self, name: str, reason: str) -> None: ...


def safe_prefix(prefix: str) -> str:
    """A relative object prefix with no `..` or absolute part (it also names local folders)."""
    path = PurePosixPath(prefix)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"invalid object prefix {prefix!r}")
    text = str(path)
    return "" if text == "." else text.rstrip("/") + "/"


def _data_files(names: list[str], prefix: str) -> list[str]:
    # Only the files directly in the drop folder; markers and our own notes are not data.
    out = []
    for name in names:
        rest = name[len(prefix):]
        if rest and "/" not in rest and not rest.startswith("_") and not rest.endswith(".rejected.json"):
            out.append(name)
    return sorted(out)


class _Copying:
    """The copy loops both stores share; each store says how one object is read or written."""

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def _get(self, name: str, target: Path) -> None:
        raise NotImplementedError

    def _put(self, path: Path, name: str) -> None:
        raise NotImplementedError

    def download_prefix(self, prefix: str, dest: Path) -> list[Path]:
        prefix = safe_prefix(prefix)
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for name in _data_files(self.list(prefix), prefix):
            target = dest / name[len(prefix):]
            self._get(name, target)
            out.append(target)
        return out

    def upload_dir(self, src: Path, prefix: str) -> list[str]:
        prefix = safe_prefix(prefix)
        names = []
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            name = prefix + path.relative_to(src).as_posix()
            self._put(path, name)
            names.append(name)
        return names


class GcsStore(_Copying):
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.name = bucket
        self.location = f"gs://{bucket}"
        self.bucket = client.bucket(bucket)

    def list(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self.client.list_blobs(self.name, prefix=safe_prefix(prefix)))

    def _get(self, name: str, target: Path) -> None:
        self.bucket.blob(name).download_to_filename(str(target))

    def _put(self, path: Path, name: str) -> None:
        self.bucket.blob(name).upload_from_filename(str(path))

    def mark_rejected(self, name: str, reason: str) -> None:
        blob = self.bucket.get_blob(name)
        if blob is None:
            return
        blob.metadata = {**(blob.metadata or {}), REJECTED_KEY: reason[:1000]}
        blob.patch()

    def metadata(self, name: str) -> dict[str, str]:
        blob = self.bucket.get_blob(name)
        return dict(blob.metadata or {}) if blob is not None else {}


class LocalStore(_Copying):
    """A folder standing in for a bucket (local mode): object names are relative paths."""

    def __init__(self, root: Path, name: str = "local-bucket") -> None:
        self.root = Path(root)
        self.name = name
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"invalid object name {name!r}")
        return self.root / rel

    def list(self, prefix: str) -> list[str]:
        prefix = safe_prefix(prefix)
        if not self.root.is_dir():
            return []
        names = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(n for n in names if n.startswith(prefix))

    def _get(self, name: str, target: Path) -> None:
        shutil.copyfile(self._path(name), target)

    def _put(self, path: Path, name: str) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def mark_rejected(self, name: str, reason: str) -> None:
        path = self._path(name)
        if path.exists():
            path.with_name(path.name + ".rejected.json").write_text(json.dumps({REJECTED_KEY: reason}), "utf-8")
