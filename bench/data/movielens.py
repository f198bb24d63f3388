"""Parse and validate the MovieLens-100k files; encode ids to contiguous codes.

Parsing is strict: a malformed line raises DataError naming the file, the line and the
problem, rather than letting pandas guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.fetch import locate, sha256_of
from bench.errors import DataError

RATING_DTYPES = {"user_id": "int32", "item_id": "int32", "rating": "int8", "timestamp": "int64"}
N_GENRES = 19


@dataclass(frozen=True)
class IdMap:
    """Raw ids <-> contiguous codes 0..n-1 (codes follow the sorted raw ids)."""

    ids: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray) -> IdMap:
        return cls(np.unique(raw))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, raw: np.ndarray | int) -> np.ndarray:
        raw = np.asarray(raw)
        codes = np.searchsorted(self.ids, raw)
        known = (codes < len(self.ids)) & (self.ids[np.minimum(codes, len(self.ids) - 1)] == raw)
        if not np.all(known):
            unknown = np.atleast_1d(raw)[~np.atleast_1d(known)][:5]
            raise DataError(f"unknown ids {unknown.tolist()}: not present in the rating data")
        return codes.astype("int32")

    def decode(self, codes: np.ndarray | int) -> np.ndarray:
        return self.ids[np.asarray(codes)]


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


@dataclass(frozen=True)
class MovieLens:
    """Ratings with contiguous codes (`user`, `item`), movies, and the id maps both ways."""

    root: Path | None
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: IdMap
    items: IdMap
    checksum: str

    @classmethod
    def from_ratings(
        cls,
        ratings: pd.DataFrame,
        movies: pd.DataFrame | None = None,
        root: Path | None = None,
        checksum: str = "",
    ) -> MovieLens:
        """Encode ids over the whole rating set, as the reference post does."""
        users = IdMap.fit(ratings["user_id"].to_numpy())
        items = IdMap.fit(ratings["item_id"].to_numpy())
        ratings = ratings.assign(
            user=users.encode(ratings["user_id"].to_numpy()),
            item=items.encode(ratings["item_id"].to_numpy()),
        )
        if movies is None:
            movies = pd.DataFrame({"title": pd.Series(dtype="string")})
        return cls(root, ratings.reset_index(drop=True), movies, users, items, checksum)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def read_split_file(self, name: str) -> pd.DataFrame:
        """A canonical split file (e.g. `u1.base`), encoded with this data set's id maps."""
        if self.root is None:
            raise DataError(f"split file {name} needs a data folder; this data set has none")
        frame = read_ratings(self.root / name)
        return frame.assign(
            user=self.users.encode(frame["user_id"].to_numpy()),
            item=self.items.encode(frame["item_id"].to_numpy()),
        )

    def titles(self, item_codes: np.ndarray) -> list[str]:
        """Movie titles for item codes (raw id as text where no title is known)."""
        raw = self.items.decode(item_codes)
        known = self.movies["title"].reindex(raw)
        return [str(t) if pd.notna(t) else str(r) for t, r in zip(known, raw, strict=True)]


def read_folder(folder: Path) -> MovieLens:
    """Load an (unverified) MovieLens-100k-format folder; `load_movielens` verifies first."""
    ratings = read_ratings(folder / "u.data")
    movies = None
    if (folder / "u.item").is_file():
        genres_file = folder / "u.genre"
        genres = (
            read_genres(genres_file)
            if genres_file.is_file()
            else [f"genre_{i}" for i in range(N_GENRES)]
        )
        movies = read_movies(folder / "u.item", genres)
    return MovieLens.from_ratings(ratings, movies, folder, sha256_of(folder / "u.data"))


def load_movielens(data_dir: str | Path | None = None) -> MovieLens:
    """Locate (see `bench.data.fetch.locate`), verify and load MovieLens-100k."""
    return read_folder(locate(data_dir))
