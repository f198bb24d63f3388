"""Locating, verifying and downloading MovieLens-100k, against a local HTTP server only."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from bench.data import fetch
from bench.data.fetch import DATA_DIR_ENV
from bench.datasets import get_dataset
from bench.errors import DataError

ML100K = get_dataset("ml-100k")


@pytest.fixture
def serve(tmp_path: Path):
    """Serve files from a temporary folder on 127.0.0.1; yields a function name -> URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, lambda name: f"http://127.0.0.1:{server.server_address[1]}/{name}"
    server.shutdown()
    server.server_close()


def _zip_folder(folder: Path, archive: Path, corrupt: str | None = None) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ML100K.files_sha256:
            data = (folder / name).read_bytes()
            if name == corrupt:
                data = data.replace(b"\t3\t", b"\t4\t", 1)
            zf.writestr(f"ml-100k/{name}", data)
    return archive


def _our_zip(archive: Path):
    """ML-100k with this generated archive's own size and checksum (the official values are
    checked in test_wrong_archive_checksum_is_refused)."""
    return replace(
        ML100K, archive_size=archive.stat().st_size, archive_sha256=fetch.sha256_of(archive)
    )


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    return tmp_path / "cache" / "recsys-sweep-bench"


def test_download_verifies_and_caches_atomically(real_data_dir, serve, cache):
    root, url = serve
    dataset = _our_zip(_zip_folder(real_data_dir, root / "ml-100k.zip"))
    folder = fetch.locate(dataset, url=url("ml-100k.zip"))
    assert folder == cache / "ml-100k"
    assert (folder / "u.data").read_bytes() == (real_data_dir / "u.data").read_bytes()
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]  # no staging folder left
    (root / "ml-100k.zip").unlink()  # a second lookup uses the cache, not the network
    assert fetch.locate(dataset, url=url("ml-100k.zip")) == folder


def test_wrong_archive_checksum_is_refused(real_data_dir, serve, cache):
    root, url = serve
    _zip_folder(real_data_dir, root / "ml-100k.zip")  # not byte-identical to the official zip
    with pytest.raises(DataError, match="not the 4,924,029 of the official|fails its SHA-256"):
        fetch.locate(ML100K, url=url("ml-100k.zip"))
    assert list(cache.iterdir()) == []


def test_corrupt_download_leaves_no_cache(real_data_dir, serve, cache):
    root, url = serve
    dataset = _our_zip(_zip_folder(real_data_dir, root / "ml-100k.zip", corrupt="u.data"))
    with pytest.raises(DataError, match=r"u\.data fails its SHA-256 check"):
        fetch.locate(dataset, url=url("ml-100k.zip"))
    assert list(cache.iterdir()) == []


def test_not_a_zip_is_a_clear_error(serve, cache):
    root, url = serve
    (root / "ml-100k.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="did not give a valid zip archive"):
        fetch.locate(_our_zip(root / "ml-100k.zip"), url=url("ml-100k.zip"))
    assert list(cache.iterdir()) == []


def test_offline_without_data_names_the_variable_and_url(serve, cache):
    _, url = serve
    with pytest.raises(DataError, match=rf"could not download .*missing\.zip.*{DATA_DIR_ENV}"):
        fetch.locate(ML100K, url=url("missing.zip"))


def test_damaged_cache_is_replaced_by_a_fresh_download(real_data_dir, serve, cache):
    root, url = serve
    dataset = _our_zip(_zip_folder(real_data_dir, root / "ml-100k.zip"))
    folder = fetch.locate(dataset, url=url("ml-100k.zip"))
    (folder / "u.item").write_text("truncated")
    assert fetch.locate(dataset, url=url("ml-100k.zip")) == folder
    fetch.verify(folder, dataset)


def test_explicit_folder_beats_environment_beats_cache(real_data_dir, tmp_path, cache, monkeypatch):
    copy = shutil.copytree(real_data_dir, tmp_path / "copy")
    monkeypatch.setenv(DATA_DIR_ENV, str(real_data_dir))
    assert fetch.locate(ML100K, copy) == copy
    assert fetch.locate(ML100K) == real_data_dir


def test_folder_without_u_data_names_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match=rf"from \${DATA_DIR_ENV}\) holds no u\.data"):
        fetch.locate(ML100K)
    with pytest.raises(DataError, match=r"from --data-dir\) holds no u\.data"):
        fetch.locate(ML100K, tmp_path)


def test_tampered_local_file_fails_verification(real_data_dir, tmp_path):
    copy = shutil.copytree(real_data_dir, tmp_path / "copy")
    with (copy / "u1.test").open("a") as handle:
        handle.write("1\t1\t5\t0\n")
    with pytest.raises(DataError, match=r"u1\.test fails its SHA-256 check"):
        fetch.locate(ML100K, copy)
