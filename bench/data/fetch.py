"""Find MovieLens-100k on disk, or download it, and verify every file.

Lookup order: explicit folder > $BENCH_DATA_DIR > the user cache folder > download of the
official archive into that cache. A cache folder only ever appears whole and verified: the
archive is downloaded and extracted in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from bench.config import DATA_DIR_ENV, DATA_URL
from bench.errors import DataError

# SHA-256 of each file of the official ml-100k archive that this project reads or checks.
SHA256: dict[str, str] = {
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}


def cache_dir() -> Path:
    """The per-user cache folder that holds a downloaded, verified `ml-100k/`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recsys-sweep-bench"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(folder: Path) -> None:
    """Raise DataError unless every file of SHA256 is in `folder` with its checksum."""
    for name, expected in SHA256.items():
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path} is missing: {folder} is not a complete MovieLens-100k folder "
                f"(point {DATA_DIR_ENV} at the folder that holds u.data)"
            )
        if sha256_of(path) != expected:
            raise DataError(
                f"{path} fails its SHA-256 check (expected {expected[:12]}...): the file is "
                f"corrupt or not the official MovieLens-100k; replace it with a fresh copy"
            )


def download(url: str, target: Path, timeout: float = 60.0) -> Path:
    """Download and extract the archive at `url` into `target/ml-100k`, atomically."""
    target.mkdir(parents=True, exist_ok=True)
    final = target / "ml-100k"
    staging = Path(tempfile.mkdtemp(prefix=".ml-100k-", dir=target))
    try:
        archive = staging / "ml-100k.zip"
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout) as response,
                archive.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(
                f"could not download MovieLens-100k from {url} ({exc}); offline, set "
                f"{DATA_DIR_ENV} to a folder that holds u.data"
            ) from exc
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{url} did not give a valid zip archive ({exc})") from exc
        extracted = staging / "ml-100k"
        verify(extracted)
        try:
            os.replace(extracted, final)
        except OSError:
            if not final.is_dir():  # not a lost race with another downloader
                raise
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def locate(data_dir: str | Path | None = None, *, url: str = DATA_URL) -> Path:
    """Return a verified MovieLens-100k folder, downloading it into the cache if needed."""
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if explicit:
        folder = Path(explicit).expanduser()
        if not (folder / "u.data").is_file():
            source = "--data-dir" if data_dir is not None else f"${DATA_DIR_ENV}"
            raise DataError(
                f"{folder} (from {source}) holds no u.data: point it at the unzipped ml-100k folder"
            )
        verify(folder)
        return folder
    cached = cache_dir() / "ml-100k"
    if cached.is_dir():
        try:
            verify(cached)
            return cached
        except DataError:
            shutil.rmtree(cached, ignore_errors=True)  # stale or damaged: fetch a fresh copy
    return download(url, cache_dir())
