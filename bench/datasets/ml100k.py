"""MovieLens-100k (GroupLens, 1998): 100,000 ratings 1..5 of 1,682 movies by 943 users.

Files: `u.data` (tab-separated user id, item id, rating, timestamp), `u.item` (latin-1,
`|`-separated: id, title, release date, video date, URL, 19 genre flags), `u.genre`, and
the canonical five-fold cross-validation pairs u1..u5 (`uN.base` / `uN.test`, disjoint
test parts that partition the data) plus ua/ub (ten test ratings per user).
Parsing is strict: a malformed line names the file, the line and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.datasets.base import Dataset
from bench.errors import DataError

# SHA-256 of each file of the official archive that this project reads or checks.
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


RATING_DTYPES = {"user_id": "int32", "item_id": "int32", "rating": "int8", "timestamp": "int64"}
N_GENRES = 19


def _int_fields(path: Path, lineno: int, fields: list[str]) -> list[int]:
    values = []
    for position, text in enumerate(fields, 1):
        try:
            values.append(int(text))
        except ValueError:
            raise DataError(
                f"{path}, line {lineno}: field {position} is {text!r}, not an integer "
                f"(expected user id, item id, rating, timestamp)"
            ) from None
    return values


def read_ratings(path: Path) -> pd.DataFrame:
    """Read a u.data-style file: user id, item id, rating 1..5, timestamp; tab-separated."""
    rows = []
    with path.open(encoding="latin-1") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 4:
                raise DataError(
                    f"{path}, line {lineno}: expected 4 tab-separated columns, found "
                    f"{len(fields)} in {line.rstrip()!r}"
                )
            user, item, rating, timestamp = _int_fields(path, lineno, fields)
            if user < 1 or item < 1:
                raise DataError(f"{path}, line {lineno}: ids must be positive integers")
            if not 1 <= rating <= 5:
                raise DataError(f"{path}, line {lineno}: rating {rating} is outside 1..5")
            rows.append((user, item, rating, timestamp))
    if not rows:
        raise DataError(f"{path} holds no ratings")
    frame = pd.DataFrame(rows, columns=list(RATING_DTYPES)).astype(RATING_DTYPES)
    duplicated = frame.duplicated(["user_id", "item_id"])
    if duplicated.any():
        line = int(np.flatnonzero(duplicated.to_numpy())[0])
        user, item = frame.iloc[line][["user_id", "item_id"]]
        raise DataError(
            f"{path}, line {line + 1}: duplicate rating for (user {user}, item {item}); "
            f"each pair may appear once"
        )
    return frame


def read_genres(path: Path) -> list[str]:
    """Genre names in flag order, from u.genre (`name|index` lines)."""
    names: dict[int, str] = {}
    with path.open(encoding="latin-1") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            name, _, index = line.rstrip("\r\n").partition("|")
            if not index.isdigit():
                raise DataError(f"{path}, line {lineno}: expected 'name|index', got {line!r}")
            names[int(index)] = name
    return [names.get(i, f"genre_{i}") for i in range(N_GENRES)]


def read_movies(path: Path, genres: list[str]) -> pd.DataFrame:
    """Read u.item (latin-1, `|`-separated): id, title, release date, URL, 19 genre flags."""
    rows = []
    n_columns = 5 + N_GENRES
    with path.open(encoding="latin-1") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("|")
            if len(fields) != n_columns:
                raise DataError(
                    f"{path}, line {lineno}: expected {n_columns} '|'-separated columns, "
                    f"found {len(fields)}"
                )
            item_id, *_ = _int_fields(path, lineno, fields[:1])
            flags = fields[5:]
            if any(flag not in ("0", "1") for flag in flags):
                raise DataError(f"{path}, line {lineno}: genre flags must be 0 or 1")
            rows.append([item_id, fields[1], fields[2], fields[4], *(f == "1" for f in flags)])
    movies = pd.DataFrame(rows, columns=["item_id", "title", "release_date", "url", *genres])
    movies["item_id"] = movies["item_id"].astype("int32")
    movies["title"] = movies["title"].astype("string")
    movies["url"] = movies["url"].astype("string")
    movies["release_date"] = pd.to_datetime(
        movies["release_date"], format="%d-%b-%Y", errors="coerce"
    )
    if movies["item_id"].duplicated().any():
        raise DataError(f"{path}: item ids are not unique")
    return movies.set_index("item_id")


def read_items(folder: Path) -> pd.DataFrame | None:
    """Movies with titles and genre flags, when the folder has u.item."""
    if not (folder / "u.item").is_file():
        return None
    genres_file = folder / "u.genre"
    genres = (
        read_genres(genres_file)
        if genres_file.is_file()
        else [f"genre_{i}" for i in range(N_GENRES)]
    )
    return read_movies(folder / "u.item", genres)


FOLDS = {
    name: (f"{name}.base", f"{name}.test") for name in ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
}

ML100K = Dataset(
    name="ml-100k",
    description="MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users",
    folder="ml-100k",
    ratings_file="u.data",
    read_ratings=read_ratings,
    read_items=read_items,
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    archive_size=4_924_029,
    archive_sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    files_sha256=SHA256,
    folds=FOLDS,
    benchmark_folds=("u1", "u2", "u3", "u4", "u5"),
    n_ratings=100_000,
)
