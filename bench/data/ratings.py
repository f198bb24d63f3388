"""Ratings of any registered data set, with ids encoded to contiguous codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.fetch import locate, sha256_of
from bench.datasets import DEFAULT, Dataset, get_dataset
from bench.errors import DataError


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


@dataclass(frozen=True)
class RatingData:
    """Ratings with contiguous codes (`user`, `item`), item info, and the id maps both ways."""

    dataset: Dataset
    root: Path | None
    ratings: pd.DataFrame
    movies: pd.DataFrame  # item info indexed by raw item id (at least `title`)
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
        dataset: Dataset | None = None,
    ) -> RatingData:
        """Encode ids over the whole rating set, as the reference post does."""
        users = IdMap.fit(ratings["user_id"].to_numpy())
        items = IdMap.fit(ratings["item_id"].to_numpy())
        ratings = ratings.assign(
            user=users.encode(ratings["user_id"].to_numpy()),
            item=items.encode(ratings["item_id"].to_numpy()),
        )
        if movies is None:
            movies = pd.DataFrame({"title": pd.Series(dtype="string")})
        dataset = dataset or get_dataset(DEFAULT)
        return cls(dataset, root, ratings.reset_index(drop=True), movies, users, items, checksum)

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
        frame = self.dataset.read_ratings(self.root / name)
        return frame.assign(
            user=self.users.encode(frame["user_id"].to_numpy()),
            item=self.items.encode(frame["item_id"].to_numpy()),
        )

    def titles(self, item_codes: np.ndarray) -> list[str]:
        """Item titles for item codes (raw id as text where no title is known)."""
        raw = self.items.decode(item_codes)
        known = self.movies["title"].reindex(raw)
        return [str(t) if pd.notna(t) else str(r) for t, r in zip(known, raw, strict=True)]


def read_folder(folder: Path, dataset: Dataset | None = None) -> RatingData:
    """Load an (unverified) folder in `dataset`'s format; `load_dataset` verifies first."""
    dataset = dataset or get_dataset(DEFAULT)
    ratings = dataset.read_ratings(folder / dataset.ratings_file)
    movies = dataset.read_items(folder) if dataset.read_items else None
    checksum = sha256_of(folder / dataset.ratings_file)
    return RatingData.from_ratings(ratings, movies, folder, checksum, dataset)


def load_dataset(name: str = DEFAULT, data_dir: str | Path | None = None) -> RatingData:
    """Locate (see `bench.data.fetch.locate`), verify and load the data set `name`."""
    dataset = get_dataset(name)
    return read_folder(locate(dataset, data_dir), dataset)
