"""Find a data set on disk, or download its official archive, and verify it.

Lookup order: explicit folder (--data-dir) > $BENCH_DATA_DIR > the user cache folder >
download of the official archive into that cache. The archive is checked against its
published size and SHA-256 before it is unpacked; unpacked files are checked against the
data set's per-file SHA-256 values where it has them, else against a manifest written when
the verified archive was unpacked. A cache folder only ever appears whole and verified: the
archive is downloaded and unpacked in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from bench.datasets import Dataset
from bench.errors import DataError

DATA_DIR_ENV = "BENCH_DATA_DIR"
MANIFEST = ".bench-sha256.json"  # per-file checksums of a folder unpacked from a verified zip


def cache_dir() -> Path:
    """The per-user cache folder that holds downloaded, verified data set folders."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recsys-sweep-bench"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_checksums(dataset: Dataset, folder: Path) -> dict[str, str]:
    """The data set's own per-file values, else the manifest of a verified download."""
    if dataset.files_sha256:
        return dict(dataset.files_sha256)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(
                f"{manifest} is damaged ({exc}); delete {folder} and fetch again"
            ) from exc
    return {}


def is_verified(dataset: Dataset, folder: Path) -> bool:
    return bool(expected_checksums(dataset, folder))


def verify(folder: Path, dataset: Dataset) -> None:
    """Raise DataError unless every file with a known checksum is in `folder` and matches."""
    for name, expected in expected_checksums(dataset, folder).items():
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path} is missing: {folder} is not a complete {dataset.name} folder "
                f"(point {DATA_DIR_ENV} or --data-dir at the folder that holds "
                f"{dataset.ratings_file})"
            )
        if sha256_of(path) != expected:
            raise DataError(
                f"{path} fails its SHA-256 check (expected {expected[:12]}...): the file is "
                f"corrupt or not the official {dataset.name}; replace it with a fresh copy"
            )


def _fetch_archive(url: str, archive: Path, dataset: Dataset, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(
            f"could not download {dataset.name} from {url} ({exc}); offline, set "
            f"{DATA_DIR_ENV} or pass --data-dir with a folder that holds {dataset.ratings_file}"
        ) from exc
    size = archive.stat().st_size
    if dataset.archive_size is not None and size != dataset.archive_size:
        raise DataError(
            f"{url} gave {size:,} bytes, not the {dataset.archive_size:,} of the official "
            f"{dataset.name} archive; try again later or fetch it by hand"
        )
    if dataset.archive_sha256 is not None and sha256_of(archive) != dataset.archive_sha256:
        raise DataError(
            f"{url} fails its SHA-256 check (expected {dataset.archive_sha256[:12]}...): the "
            f"download is corrupt or not the official archive; try again"
        )


def _unpack(archive: Path, staging: Path, url: str, dataset: Dataset) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{url} did not give a valid zip archive ({exc})") from exc
    extracted = staging / dataset.folder
    if not (extracted / dataset.ratings_file).is_file():
        raise DataError(f"{url}: the archive has no {dataset.folder}/{dataset.ratings_file}")
    if dataset.files_sha256:
        verify(extracted, dataset)
    else:  # the archive was verified: remember its files' checksums for later lookups
        sums = {
            str(p.relative_to(extracted)): sha256_of(p) for p in extracted.rglob("*") if p.is_file()
        }
        (extracted / MANIFEST).write_text(json.dumps(sums, indent=1, sort_keys=True))
    return extracted


def download(dataset: Dataset, url: str, target: Path, timeout: float = 60.0) -> Path:
    """Download, verify and unpack `dataset`'s archive into `target/<folder>`, atomically."""
    target.mkdir(parents=True, exist_ok=True)
    final = target / dataset.folder
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset.folder}-", dir=target))
    try:
        archive = staging / "archive.zip"
        _fetch_archive(url, archive, dataset, timeout)
        extracted = _unpack(archive, staging, url, dataset)
        try:
            os.replace(extracted, final)
        except OSError:
            if not final.is_dir():  # not a lost race with another downloader
                raise
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _explicit(dataset: Dataset, data_dir: str | Path | None) -> Path | None:
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not explicit:
        return None
    folder = Path(explicit).expanduser()
    if not (folder / dataset.ratings_file).is_file():
        source = "--data-dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise DataError(
            f"{folder} (from {source}) holds no {dataset.ratings_file}: point it at the "
            f"unzipped {dataset.folder} folder"
        )
    verify(folder, dataset)
    return folder


def locate(dataset: Dataset, data_dir: str | Path | None = None, *, url: str | None = None) -> Path:
    """Return a verified folder of `dataset`, downloading it into the cache if needed.

    A data set whose folder is an absolute path (a `csv:PATH` file) is read where it is,
    unless --data-dir names another folder: never looked up in, or removed from, the cache.
    """
    local = Path(dataset.folder)
    if data_dir is None and local.is_absolute():
        if not (local / dataset.ratings_file).is_file():
            raise DataError(f"{dataset.name}: no file {local / dataset.ratings_file}")
        return local
    folder = _explicit(dataset, data_dir)
    if folder is not None:
        return folder
    cached = cache_dir() / dataset.folder
    if cached.is_dir():
        try:
            verify(cached, dataset)
            if is_verified(dataset, cached):
                return cached
        except DataError:
            pass
        shutil.rmtree(cached, ignore_errors=True)  # stale or damaged: fetch a fresh copy
    url = url or dataset.url
    if url is None:
        raise DataError(
            f"{dataset.name} has no download address; pass --data-dir with a folder that "
            f"holds {dataset.ratings_file}"
        )
    return download(dataset, url, cache_dir())
